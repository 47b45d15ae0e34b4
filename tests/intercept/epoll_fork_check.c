/*
 * tests/intercept/epoll_fork_check.c — one epoll set shared across fork, as Linux shares it
 * (the set belongs to the open file description): what a child adds, removes, closes or
 * reports one-shot is what the parent sees; pre-forked workers wait on one set for one
 * listener. Runs under libonramp.so on the tap the stack creates (test_intercept.sh); the
 * peer is the tap's kernel side (198.18.77.1), the stack is 198.18.77.2. Every socket the
 * sets watch is shown accelerated.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define SERVER_PORT 7410 /* the kernel's server on the tap's kernel side */
#define WORKER_PORT 7411 /* the stack's listener of the pre-forked workers */
#define WORKERS	    2
#define CLIENTS	    20

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- parent and child in step: one byte over a pipe ------------------------------------- */

struct chan {
	int to_child[2], to_parent[2];
};

static void chan_open(struct chan *ch)
{
	if (pipe(ch->to_child) || pipe(ch->to_parent)) {
		perror("pipe");
		exit(1);
	}
}

static void chan_close(struct chan *ch)
{
	close(ch->to_child[0]);
	close(ch->to_child[1]);
	close(ch->to_parent[0]);
	close(ch->to_parent[1]);
}

static void step_send(int fd)
{
	(void)!write(fd, "s", 1);
}

/* false when the other side said nothing for 5 s */
static bool step_wait(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	return poll(&p, 1, 5000) == 1 && read(fd, &c, 1) == 1;
}

/* Fork with stdout flushed (no line printed twice). */
static pid_t fork_flushed(void)
{
	fflush(stdout);
	return fork();
}

static void child_done(void)
{
	fflush(stdout);
	exit(failures != 0);
}

static void reap(pid_t pid, const char *what)
{
	int st = 0;

	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the child's checks passed (status %#x)",
	      what, st);
}

/* ---- sockets ---------------------------------------------------------------------------- */

/* An accelerated client connected to the kernel's server; *srv: the kernel's end. */
static int client_pair(int ls, int *srv)
{
	struct sockaddr_in ka = sin_of(KERNEL_IP, SERVER_PORT);
	int one = 1, c = socket(AF_INET, SOCK_STREAM, 0);

	if (connect(c, (struct sockaddr *)&ka, sizeof(ka))) {
		printf("FAIL connect: %s\n", strerror(errno));
		exit(1);
	}
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (srv)
		*srv = accept(ls, NULL, NULL);
	return c;
}

static void drain(int fd)
{
	char buf[256];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

struct later {
	int fd;
	int ms;
};

static void *later_main(void *arg)
{
	struct later *l = arg;

	usleep((useconds_t)l->ms * 1000);
	(void)!write(l->fd, "x", 1);
	return NULL;
}

/* ---- the cases -------------------------------------------------------------------------- */

/* A set with only a kernel member at fork; the child adds an accelerated socket; the parent,
 * through a dup of its epoll fd, reports it. */
static void test_child_adds(int ls, int pipe_r)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x919e}, out[4];
	int ep = epoll_create1(0), epd, s2, rc;
	struct chan ch;
	pid_t pid;

	epoll_ctl(ep, EPOLL_CTL_ADD, pipe_r, &ev);
	chan_open(&ch);
	pid = fork_flushed();
	if (pid == 0) {
		int c2 = client_pair(ls, NULL);

		CHECK(is_accelerated(c2), "child adds: the child's new socket is accelerated");
		ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 0xc2};
		rc = epoll_ctl(ep, EPOLL_CTL_ADD, c2, &ev);
		CHECK(rc == 0, "child adds: EPOLL_CTL_ADD in the child (%s)",
		      rc ? strerror(errno) : "ok");
		step_send(ch.to_parent[1]);
		step_wait(ch.to_child[0]);
		close(c2);
		child_done();
	}
	CHECK(step_wait(ch.to_parent[0]), "child adds: the child added its socket");
	s2 = accept(ls, NULL, NULL);
	epd = dup(ep);
	(void)!write(s2, "x", 1);
	rc = epoll_wait(epd, out, 4, 2000);
	CHECK(rc == 1 && out[0].data.u64 == 0xc2 && (out[0].events & EPOLLIN),
	      "child adds: the parent's epoll_wait reports the child's socket (rc %d, %#llx)", rc,
	      rc > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
	step_send(ch.to_child[1]);
	reap(pid, "child adds");
	/* the child closed its only fd: the socket is gone, and its registration with it */
	rc = epoll_wait(ep, out, 4, 100);
	CHECK(rc == 0, "child adds: the member went with its socket's last fd (rc %d)", rc);
	close(s2);
	close(epd);
	close(ep);
	chan_close(&ch);
}

/* The child closes its copy of a registered socket: the parent's copy keeps the registration,
 * and a sleeping epoll_wait still wakes for it. */
static void test_child_closes(int ls)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xc1}, out[4];
	int ep = epoll_create1(0), s1, c1 = client_pair(ls, &s1), rc;
	struct later l = {.fd = s1, .ms = 150};
	struct chan ch;
	pthread_t t;
	int64_t t0;
	pid_t pid;

	CHECK(is_accelerated(c1), "child closes: the registered socket is accelerated");
	epoll_ctl(ep, EPOLL_CTL_ADD, c1, &ev);
	chan_open(&ch);
	pid = fork_flushed();
	if (pid == 0) {
		close(c1);
		step_send(ch.to_parent[1]);
		step_wait(ch.to_child[0]);
		child_done();
	}
	CHECK(step_wait(ch.to_parent[0]), "child closes: the child closed its copy");
	pthread_create(&t, NULL, later_main, &l);
	t0 = now_ms();
	rc = epoll_wait(ep, out, 4, 3000);
	CHECK(rc == 1 && out[0].data.u64 == 0xc1 && now_ms() - t0 < 2000,
	      "child closes: the parent sleeps and wakes for its copy (rc %d, %lld ms)", rc,
	      (long long)(now_ms() - t0));
	pthread_join(t, NULL);
	drain(c1);
	step_send(ch.to_child[1]);
	reap(pid, "child closes");
	close(c1);
	(void)!write(s1, "y", 1);
	rc = epoll_wait(ep, out, 4, 100);
	CHECK(rc == 0, "child closes: closed in every process, it leaves the set (rc %d)", rc);
	close(s1);
	close(ep);
	chan_close(&ch);
}

/* One-shot reported in the child is disarmed for the parent until MOD; DEL in the child is
 * the parent's DEL too. */
static void test_child_oneshot(int ls)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 0x1}, out[4];
	int ep = epoll_create1(0), s3, c3 = client_pair(ls, &s3), rc, e;
	struct chan ch;
	pid_t pid;

	CHECK(is_accelerated(c3), "one-shot: the registered socket is accelerated");
	epoll_ctl(ep, EPOLL_CTL_ADD, c3, &ev);
	chan_open(&ch);
	pid = fork_flushed();
	if (pid == 0) {
		step_wait(ch.to_child[0]);
		rc = epoll_wait(ep, out, 4, 2000);
		CHECK(rc == 1 && out[0].data.u64 == 0x1, "one-shot: the child reports it (rc %d)",
		      rc);
		step_send(ch.to_parent[1]);
		step_wait(ch.to_child[0]);
		rc = epoll_ctl(ep, EPOLL_CTL_DEL, c3, NULL);
		CHECK(rc == 0, "one-shot: DEL in the child (%s)", rc ? strerror(errno) : "ok");
		step_send(ch.to_parent[1]);
		step_wait(ch.to_child[0]);
		child_done();
	}
	(void)!write(s3, "x", 1);
	step_send(ch.to_child[1]);
	CHECK(step_wait(ch.to_parent[0]), "one-shot: the child waited");
	rc = epoll_wait(ep, out, 4, 100);
	CHECK(rc == 0, "one-shot: disarmed for the parent by the child's report (rc %d)", rc);
	ev.data.u64 = 0x2;
	rc = epoll_ctl(ep, EPOLL_CTL_MOD, c3, &ev);
	CHECK(rc == 0, "one-shot: the parent's MOD (%s)", rc ? strerror(errno) : "ok");
	rc = epoll_wait(ep, out, 4, 1000);
	CHECK(rc == 1 && out[0].data.u64 == 0x2, "one-shot: MOD re-arms it (rc %d)", rc);
	epoll_ctl(ep, EPOLL_CTL_MOD, c3, &(struct epoll_event){.events = EPOLLIN, .data.u64 = 3});
	step_send(ch.to_child[1]);
	CHECK(step_wait(ch.to_parent[0]), "one-shot: the child deleted it");
	rc = epoll_wait(ep, out, 4, 100);
	CHECK(rc == 0, "one-shot: deleted in the child, gone for the parent (rc %d)", rc);
	rc = epoll_ctl(ep, EPOLL_CTL_DEL, c3, NULL);
	e = errno;
	CHECK(rc == -1 && e == ENOENT, "one-shot: the parent's DEL finds it gone (%s)",
	      strerror(e));
	step_send(ch.to_child[1]);
	reap(pid, "one-shot");
	close(c3);
	close(s3);
	close(ep);
	chan_close(&ch);
}

/* A pre-forked worker: accepts from the shared set's listener until told to stop; writes how
 * many it accepted, and how many of those were accelerated. */
static void worker(int ep, int l, int result_w)
{
	struct epoll_event out[8];
	int counts[2] = {0, 0};
	bool stop = false;

	while (!stop) {
		int n = epoll_wait(ep, out, 8, 10000);

		if (n <= 0) {
			CHECK(0, "workers: a worker's epoll_wait returned %d (%s)", n,
			      strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			if (out[i].data.u64 != 0x4) {
				stop = true;
				continue;
			}
			for (;;) {
				int a = accept4(l, NULL, NULL, SOCK_NONBLOCK);

				if (a < 0)
					break;
				counts[0]++;
				counts[1] += is_accelerated(a);
				(void)!write(a, "k", 1);
				close(a);
			}
		}
	}
	(void)!write(result_w, counts, sizeof(counts));
	child_done();
}

/* A kernel client over the tap (raw syscalls: never accelerated); true when it got the
 * worker's reply. */
static bool client_once(void)
{
	struct sockaddr_in st = sin_of(STACK_IP, WORKER_PORT);
	struct timeval tv = {3, 0};
	int k = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	char c = 0;
	bool ok;

	syscall(SYS_setsockopt, k, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	syscall(SYS_setsockopt, k, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ok = syscall(SYS_connect, k, &st, sizeof(st)) == 0 && syscall(SYS_read, k, &c, 1) == 1 &&
	     c == 'k';
	syscall(SYS_close, k);
	return ok;
}

/* nginx-like workers forked after the set was made, all waiting on it, the listener added
 * with EPOLLEXCLUSIVE: every connection is accepted and answered, nobody hangs. */
static void test_workers(void)
{
	struct sockaddr_in st = sin_of(STACK_IP, WORKER_PORT);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), ep = epoll_create1(0);
	int stop[2], result[2], one = 1, answered = 0, total[2] = {0, 0};
	struct epoll_event ev;
	pid_t pids[WORKERS];
	int64_t t0;

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&st, sizeof(st)) || listen(l, 64) || pipe(stop) ||
	    pipe(result)) {
		CHECK(0, "workers: listener on the stack's address: %s", strerror(errno));
		return;
	}
	ev = (struct epoll_event){.events = EPOLLIN | EPOLLEXCLUSIVE, .data.u64 = 0x4};
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) == 0, "workers: listener added exclusive");
	ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 0x5};
	epoll_ctl(ep, EPOLL_CTL_ADD, stop[0], &ev);
	for (int i = 0; i < WORKERS; i++) {
		pids[i] = fork_flushed();
		if (pids[i] == 0)
			worker(ep, l, result[1]);
	}
	t0 = now_ms();
	for (int i = 0; i < CLIENTS; i++)
		answered += client_once();
	CHECK(answered == CLIENTS, "workers: %d of %d connections answered (%lld ms)", answered,
	      CLIENTS, (long long)(now_ms() - t0));
	step_send(stop[1]);
	for (int i = 0; i < WORKERS; i++) {
		int counts[2] = {0, 0};
		struct pollfd p = {.fd = result[0], .events = POLLIN};

		if (poll(&p, 1, 15000) == 1 && read(result[0], counts, sizeof(counts)) > 0) {
			total[0] += counts[0];
			total[1] += counts[1];
		}
		reap(pids[i], "workers");
	}
	CHECK(total[0] == CLIENTS && total[1] == CLIENTS,
	      "workers: %d accepted between them, %d through the stack", total[0], total[1]);
	close(stop[0]);
	close(stop[1]);
	close(result[0]);
	close(result[1]);
	close(ep);
	close(l);
}

int main(void)
{
	struct sockaddr_in ka = sin_of(KERNEL_IP, SERVER_PORT);
	int ls, c, pipefd[2], one = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	c = socket(AF_INET, SOCK_STREAM, 0); /* starts the stack, and with it the tap */
	ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&ka, sizeof(ka)) || listen(ls, 16)) {
		printf("FAIL kernel server on %s: %s\n", KERNEL_IP, strerror(errno));
		return 1;
	}
	if (pipe(pipefd))
		return 1;

	test_child_adds(ls, pipefd[0]);
	test_child_closes(ls);
	test_child_oneshot(ls);
	test_workers();

	close(c);
	close(ls);
	printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
	return failures != 0;
}
