/*
 * tests/intercept/poll_check.c — poll, ppoll, select and epoll over accelerated sockets, as a
 * user would notice them: readiness, timeouts, level/edge/one-shot, EINTR, mixed sets, a
 * listener served by both the stack and the kernel. Runs under libonramp.so on a tap the
 * stack creates (run_poll_check.sh makes a namespace for it); the peer is the kernel side
 * of the tap (198.18.77.1), the stack is 198.18.77.2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a peer writing later, from a thread ------------------------------------------------ */

struct later {
	int fd;
	int ms;
	pthread_t to_signal; /* kill with SIGUSR1 instead of writing, when sig */
	int sig;
};

static void *later_main(void *arg)
{
	struct later *l = arg;

	usleep((useconds_t)l->ms * 1000);
	if (l->sig)
		pthread_kill(l->to_signal, l->sig);
	else
		(void)!write(l->fd, "x", 1);
	return NULL;
}

static pthread_t later_start(struct later *l)
{
	pthread_t t;

	pthread_create(&t, NULL, later_main, l);
	return t;
}

static void drain(int fd)
{
	char buf[256];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static volatile sig_atomic_t got_sig;

static void on_sig(int sig)
{
	(void)sig;
	got_sig++;
}

/* ---- the cases -------------------------------------------------------------------------- */

static void test_poll(int c, int s, int pipe_r, int pipe_w)
{
	struct pollfd p[2];
	struct later l = {.fd = s, .ms = 80};
	int64_t t0;
	int rc;

	p[0] = (struct pollfd){.fd = c, .events = POLLOUT};
	rc = poll(p, 1, 0);
	CHECK(rc == 1 && p[0].revents == POLLOUT, "poll: connected socket is writable (rc %d, %#x)",
	      rc, p[0].revents);

	p[0] = (struct pollfd){.fd = c, .events = POLLIN};
	t0 = now_ms();
	rc = poll(p, 1, 100);
	CHECK(rc == 0 && p[0].revents == 0 && now_ms() - t0 >= 99,
	      "poll: nothing to read times out after 100 ms (rc %d, %lld ms)", rc,
	      (long long)(now_ms() - t0));

	pthread_t t = later_start(&l);
	t0 = now_ms();
	rc = poll(p, 1, -1);
	CHECK(rc == 1 && (p[0].revents & POLLIN) && now_ms() - t0 >= 60,
	      "poll: sleeps until the peer writes (rc %d, %#x, %lld ms)", rc, p[0].revents,
	      (long long)(now_ms() - t0));
	pthread_join(t, NULL);
	drain(c);

	p[0] = (struct pollfd){.fd = c, .events = POLLIN};
	p[1] = (struct pollfd){.fd = pipe_r, .events = POLLIN};
	l = (struct later){.fd = pipe_w, .ms = 50};
	t = later_start(&l);
	rc = poll(p, 2, 2000);
	CHECK(rc == 1 && p[0].revents == 0 && p[1].revents == POLLIN,
	      "poll: mixed set wakes for the kernel fd (rc %d, %#x %#x)", rc, p[0].revents,
	      p[1].revents);
	pthread_join(t, NULL);
	(void)!read(pipe_r, (char[8]){0}, 8);

	p[1].fd = -1;
	(void)!write(s, "y", 1);
	rc = poll(p, 2, 1000);
	CHECK(rc == 1 && (p[0].revents & POLLIN) && p[1].revents == 0,
	      "poll: negative fd ignored, data reported (rc %d)", rc);
	drain(c);
}

static void test_ppoll_mask(int c)
{
	struct pollfd p = {.fd = c, .events = POLLIN};
	sigset_t block, none;
	struct later l = {.ms = 50, .to_signal = pthread_self(), .sig = SIGUSR1};
	pthread_t t;
	int rc, e;

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	sigemptyset(&none);
	got_sig = 0;
	t = later_start(&l);
	rc = ppoll(&p, 1, NULL, &none);
	e = errno;
	CHECK(rc == -1 && e == EINTR && got_sig == 1,
	      "ppoll: a signal blocked outside, unblocked by the mask, interrupts (rc %d, %s)", rc,
	      strerror(e));
	pthread_join(t, NULL);
	pthread_sigmask(SIG_UNBLOCK, &block, NULL);
}

static void test_eintr(int c, int ep)
{
	struct pollfd p = {.fd = c, .events = POLLIN};
	struct itimerval it = {.it_value = {0, 60000}};
	struct epoll_event ev;
	fd_set r;
	int rc, e;

	setitimer(ITIMER_REAL, &it, NULL);
	rc = poll(&p, 1, 3000);
	e = errno;
	CHECK(rc == -1 && e == EINTR, "poll: SIGALRM handler interrupts (rc %d, %s)", rc,
	      strerror(e));

	setitimer(ITIMER_REAL, &it, NULL);
	FD_ZERO(&r);
	FD_SET(c, &r);
	rc = select(c + 1, &r, NULL, NULL, NULL);
	e = errno;
	CHECK(rc == -1 && e == EINTR, "select: SIGALRM handler interrupts (rc %d, %s)", rc,
	      strerror(e));

	setitimer(ITIMER_REAL, &it, NULL);
	rc = epoll_wait(ep, &ev, 1, 3000);
	e = errno;
	CHECK(rc == -1 && e == EINTR, "epoll_wait: SIGALRM handler interrupts (rc %d, %s)", rc,
	      strerror(e));
}

static void test_select(int c, int s, int pipe_r)
{
	struct timeval tv = {1, 0};
	fd_set r, w, x;
	int rc, maxfd = (c > pipe_r ? c : pipe_r) + 1;
	int64_t t0;

	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_ZERO(&x);
	FD_SET(c, &r);
	FD_SET(pipe_r, &r);
	FD_SET(c, &w);
	FD_SET(c, &x);
	(void)!write(s, "z", 1);
	usleep(20000);
	rc = select(maxfd, &r, &w, &x, &tv);
	CHECK(rc == 2 && FD_ISSET(c, &r) && FD_ISSET(c, &w) && !FD_ISSET(pipe_r, &r) &&
		  !FD_ISSET(c, &x),
	      "select: readable and writable counted once per set (rc %d)", rc);
	drain(c);

	FD_ZERO(&r);
	FD_SET(c, &r);
	FD_SET(pipe_r, &r);
	tv = (struct timeval){0, 150000};
	t0 = now_ms();
	rc = select(maxfd, &r, NULL, NULL, &tv);
	CHECK(rc == 0 && !FD_ISSET(c, &r) && tv.tv_sec == 0 && tv.tv_usec == 0 &&
		  now_ms() - t0 >= 149,
	      "select: times out after 150 ms, timeval left at 0 (rc %d, %ld.%06ld)", rc,
	      (long)tv.tv_sec, (long)tv.tv_usec);

	FD_ZERO(&r);
	FD_SET(c, &r);
	tv = (struct timeval){5, 0};
	struct later l = {.fd = s, .ms = 50};
	pthread_t t = later_start(&l);
	rc = select(c + 1, &r, NULL, NULL, &tv);
	CHECK(rc == 1 && FD_ISSET(c, &r) && tv.tv_sec == 4 && tv.tv_usec > 800000,
	      "select: wakes on data, writes back the time left (rc %d, %ld.%06ld)", rc,
	      (long)tv.tv_sec, (long)tv.tv_usec);
	pthread_join(t, NULL);
	drain(c);

	struct timespec ts = {0, 50000000};
	FD_ZERO(&r);
	FD_SET(c, &r);
	rc = pselect(c + 1, &r, NULL, NULL, &ts, NULL);
	CHECK(rc == 0 && ts.tv_nsec == 50000000, "pselect: timeout, timespec untouched (rc %d)",
	      rc);
}

static void test_epoll(int c, int s, int pipe_r, int pipe_w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xc11e47}, out[4];
	int ep = epoll_create1(EPOLL_CLOEXEC), rc, e;

	rc = epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
	CHECK(rc == 0, "epoll: add an accelerated socket");
	rc = epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
	e = errno;
	CHECK(rc == -1 && e == EEXIST, "epoll: adding it twice is EEXIST");
	rc = epoll_ctl(ep, EPOLL_CTL_MOD, pipe_w, &ev);
	e = errno;
	CHECK(rc == -1 && e == ENOENT, "epoll: MOD of a kernel non-member is ENOENT");
	rc = epoll_ctl(ep + 1000, EPOLL_CTL_ADD, c, &ev);
	e = errno;
	CHECK(rc == -1 && e == EBADF, "epoll: a bad epoll fd is EBADF (%s)", strerror(e));
	rc = epoll_ctl(pipe_r, EPOLL_CTL_ADD, c, &ev);
	e = errno;
	CHECK(rc == -1 && e == EINVAL, "epoll: a non-epoll fd is EINVAL (%s)", strerror(e));
	ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 0x919e};
	epoll_ctl(ep, EPOLL_CTL_ADD, pipe_r, &ev);

	rc = epoll_wait(ep, out, 4, 50);
	CHECK(rc == 0, "epoll: nothing ready times out (rc %d)", rc);

	(void)!write(s, "a", 1);
	rc = epoll_wait(ep, out, 4, 1000);
	CHECK(rc == 1 && out[0].data.u64 == 0xc11e47 && (out[0].events & EPOLLIN),
	      "epoll: level-triggered reports data (rc %d)", rc);
	rc = epoll_wait(ep, out, 4, 0);
	CHECK(rc == 1, "epoll: level-triggered reports it again while unread (rc %d)", rc);

	(void)!write(pipe_w, "p", 1);
	rc = epoll_wait(ep, out, 4, 0);
	CHECK(rc == 2 && out[1].data.u64 == 0x919e,
	      "epoll: stack and kernel members together (rc %d)", rc);
	(void)!read(pipe_r, (char[8]){0}, 8);

	ev = (struct epoll_event){.events = EPOLLIN | EPOLLET, .data.u64 = 0xe7};
	epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev);
	rc = epoll_wait(ep, out, 4, 0);
	CHECK(rc == 1 && out[0].data.u64 == 0xe7, "epoll: MOD to edge reports once (rc %d)", rc);
	rc = epoll_wait(ep, out, 4, 50);
	CHECK(rc == 0, "epoll: edge-triggered, no new data: nothing (rc %d %s)", rc,
	      strerror(errno));
	(void)!write(s, "b", 1);
	rc = epoll_wait(ep, out, 4, 1000);
	CHECK(rc == 1 && out[0].data.u64 == 0xe7, "epoll: edge-triggered, new data: again (rc %d)",
	      rc);
	drain(c);

	ev = (struct epoll_event){.events = EPOLLIN | EPOLLONESHOT, .data.u64 = 0x1};
	epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev);
	(void)!write(s, "c", 1);
	rc = epoll_wait(ep, out, 4, 1000);
	CHECK(rc == 1 && out[0].data.u64 == 0x1, "epoll: one-shot reports (rc %d)", rc);
	(void)!write(s, "d", 1);
	rc = epoll_wait(ep, out, 4, 50);
	CHECK(rc == 0, "epoll: one-shot disarmed after reporting (rc %d)", rc);
	epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev);
	rc = epoll_wait(ep, out, 4, 0);
	CHECK(rc == 1, "epoll: MOD rearms one-shot (rc %d)", rc);
	drain(c);

	ev = (struct epoll_event){.events = EPOLLIN, .data.u64 = 0x2};
	epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev);
	struct later l = {.fd = s, .ms = 60};
	pthread_t t = later_start(&l);
	int64_t t0 = now_ms();
	rc = epoll_wait(ep, out, 4, 3000);
	CHECK(rc == 1 && out[0].data.u64 == 0x2 && now_ms() - t0 >= 40,
	      "epoll: sleeps until the peer writes (rc %d %s, %lld ms)", rc, strerror(errno),
	      (long long)(now_ms() - t0));
	pthread_join(t, NULL);
	drain(c);

	test_eintr(c, ep);

	rc = epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL);
	CHECK(rc == 0, "epoll: DEL");
	rc = epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL);
	e = errno;
	CHECK(rc == -1 && e == ENOENT, "epoll: DEL twice is ENOENT (%s)", strerror(e));
	(void)!write(s, "e", 1);
	rc = epoll_wait(ep, out, 4, 50);
	CHECK(rc == 0, "epoll: a deleted member reports nothing (rc %d)", rc);
	drain(c);
	close(ep);
}

/* A listener on any address: the stack serves the tap, the kernel serves loopback; one
 * event per readiness, with the user's data, from either half. */
static void test_klisten(void)
{
	struct sockaddr_in any = sin_of("0.0.0.0", 7301), lo = sin_of("127.0.0.1", 7301);
	struct sockaddr_in st = sin_of(STACK_IP, 7301);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x115}, out[4];
	struct pollfd p;
	int one = 1, l, k, a, ep, rc;

	l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&any, sizeof(any)) || listen(l, 16)) {
		CHECK(0, "klisten: bind/listen on any: %s", strerror(errno));
		return;
	}
	CHECK(is_accelerated(l), "klisten: the listener is accelerated");
	ep = epoll_create1(0);
	epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
	rc = epoll_wait(ep, out, 4, 50);
	CHECK(rc == 0, "klisten: idle listener reports nothing (rc %d)", rc);

	/* a kernel client over loopback (raw syscalls: never accelerated) */
	k = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	rc = (int)syscall(SYS_connect, k, &lo, sizeof(lo));
	CHECK(rc == 0, "klisten: loopback client connects through the kernel (%s)",
	      rc ? strerror(errno) : "");
	rc = epoll_wait(ep, out, 4, 1000);
	CHECK(rc == 1 && out[0].data.u64 == 0x115,
	      "klisten: epoll reports the kernel half with the user's data (rc %d, %#llx)", rc,
	      rc > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
	p = (struct pollfd){.fd = l, .events = POLLIN};
	rc = poll(&p, 1, 0);
	CHECK(rc == 1 && p.revents == POLLIN, "klisten: poll too (rc %d, %#x)", rc, p.revents);
	a = accept(l, NULL, NULL);
	CHECK(a >= 0 && !is_accelerated(a), "klisten: accept takes the kernel connection");
	close(a);
	close(k);
	rc = epoll_wait(ep, out, 4, 50);
	CHECK(rc == 0, "klisten: nothing left after accept (rc %d)", rc);

	/* a client over the tap: the kernel side connects to the stack's address */
	k = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	rc = (int)syscall(SYS_connect, k, &st, sizeof(st));
	CHECK(rc == 0, "klisten: client over the tap connects to the stack (%s)",
	      rc ? strerror(errno) : "");
	rc = epoll_wait(ep, out, 4, 1000);
	CHECK(rc == 1 && out[0].data.u64 == 0x115, "klisten: epoll reports the stack half (rc %d)",
	      rc);
	a = accept(l, NULL, NULL);
	CHECK(a >= 0 && is_accelerated(a), "klisten: accept takes the stack connection");
	close(a);
	close(k);
	close(ep);
	close(l);
}

/* Added to a set before connect decided it: it moves to the stack's half; closed: it
 * leaves the set. */
static void test_pending_and_close(int ls)
{
	struct sockaddr_in ka = sin_of(KERNEL_IP, 7300);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = 0x9e}, out[4];
	int ep = epoll_create1(0), c, s, rc;

	c = socket(AF_INET, SOCK_STREAM, 0);
	rc = epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
	CHECK(rc == 0, "pending: an undecided socket can be added");
	connect(c, (struct sockaddr *)&ka, sizeof(ka));
	s = accept(ls, NULL, NULL);
	rc = epoll_wait(ep, out, 4, 1000);
	CHECK(rc == 1 && out[0].events == EPOLLOUT && out[0].data.u64 == 0x9e,
	      "pending: after connect, the stack's readiness (rc %d, %#x)", rc,
	      rc > 0 ? out[0].events : 0);
	rc = epoll_wait(ep, out, 4, 50);
	CHECK(rc == 0, "pending: edge-triggered, reported once (rc %d)", rc);
	(void)!write(s, "q", 1);
	rc = epoll_wait(ep, out, 4, 1000);
	CHECK(rc == 1 && (out[0].events & EPOLLIN), "pending: data arrives (rc %d)", rc);
	close(c);
	rc = epoll_wait(ep, out, 4, 50);
	CHECK(rc == 0, "close: a closed member is gone from the set (rc %d)", rc);
	errno = 1234;
	rc = epoll_wait(ep, out, 4, 0);
	CHECK(rc == 0 && errno == 1234, "errno untouched on success");
	close(s);
	close(ep);
}

int main(void)
{
	struct sockaddr_in ka = sin_of(KERNEL_IP, 7300);
	struct sigaction sa;
	int ls, c, s, pipefd[2], one = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig; /* no SA_RESTART: poll and friends are never restarted anyway */
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	c = socket(AF_INET, SOCK_STREAM, 0); /* starts the stack, and with it the tap */
	ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&ka, sizeof(ka)) || listen(ls, 4)) {
		printf("FAIL kernel server on %s: %s\n", KERNEL_IP, strerror(errno));
		return 1;
	}
	if (connect(c, (struct sockaddr *)&ka, sizeof(ka))) {
		printf("FAIL connect: %s\n", strerror(errno));
		return 1;
	}
	s = accept(ls, NULL, NULL);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	CHECK(is_accelerated(c) && !is_accelerated(s),
	      "setup: the client is accelerated, the server is the kernel's");
	if (pipe(pipefd))
		return 1;

	test_poll(c, s, pipefd[0], pipefd[1]);
	test_ppoll_mask(c);
	test_select(c, s, pipefd[0]);
	test_epoll(c, s, pipefd[0], pipefd[1]);
	test_klisten();
	test_pending_and_close(ls);

	close(c);
	close(s);
	close(ls);
	printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
	return failures != 0;
}
