/*
 * tests/intercept/mt_check.c — threads and signals under libonramp.so, as a user would
 * notice them: many threads on one stack at once, one socket shared by a sending and a
 * receiving thread, a blocking receive interrupted by a handler with and without SA_RESTART,
 * and a handler that makes socket calls while the thread it interrupts is busy in them.
 * Runs on a tap the stack creates (tests/integration/test_intercept.sh); the peers are
 * kernel sockets on the tap's kernel side (198.18.77.1), the stack is 198.18.77.2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define THREADS	  8
#define ROUNDS	  2000
#define SHARED_BYTES (8u << 20)

static int kernel_listener(int port)
{
	struct sockaddr_in a = sin_of(KERNEL_IP, port);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 64)) {
		printf("FAIL kernel listener on %s:%d: %s\n", KERNEL_IP, port, strerror(errno));
		exit(1);
	}
	return l;
}

static int stack_connect(int port)
{
	struct sockaddr_in a = sin_of(KERNEL_IP, port);
	int c = socket(AF_INET, SOCK_STREAM, 0);

	if (connect(c, (struct sockaddr *)&a, sizeof(a))) {
		printf("FAIL connect: %s\n", strerror(errno));
		exit(1);
	}
	return c;
}

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, (char *)buf + got, n - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* ---- many threads, one stack ----------------------------------------------------------- */

static void *echo_server(void *arg)
{
	int s = (int)(intptr_t)arg;
	char buf[256];
	ssize_t n;

	while ((n = recv(s, buf, sizeof(buf), 0)) > 0)
		if (send(s, buf, (size_t)n, 0) != n)
			break;
	close(s);
	return NULL;
}

static int thread_ok[THREADS];

static void *pinger(void *arg)
{
	int i = (int)(intptr_t)arg, c = stack_connect(7400), ok = is_accelerated(c);
	uint32_t out[16], in[16];

	for (int r = 0; r < ROUNDS && ok; r++) {
		for (int k = 0; k < 16; k++)
			out[k] = (uint32_t)(i << 24 | r << 4 | k);
		if (send(c, out, sizeof(out), 0) != sizeof(out) || read_full(c, in, sizeof(in)) ||
		    memcmp(in, out, sizeof(in)))
			ok = 0;
	}
	close(c);
	thread_ok[i] = ok;
	return NULL;
}

static void test_threads(void)
{
	pthread_t t[THREADS], srv[THREADS];
	int l = kernel_listener(7400), all = 1;

	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, pinger, (void *)(intptr_t)i);
	for (int i = 0; i < THREADS; i++) {
		int s = accept(l, NULL, NULL);
		pthread_create(&srv[i], NULL, echo_server, (void *)(intptr_t)s);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		pthread_join(srv[i], NULL);
		all &= thread_ok[i];
	}
	close(l);
	CHECK(all, "%d threads, each with its own accelerated connection, %d echoed round trips "
		   "each, every byte right", THREADS, ROUNDS);
}

/* ---- one socket, two threads -------------------------------------------------------------- */

struct shared_arg {
	int fd;
	int ok;
};

static void *shared_sender(void *arg)
{
	struct shared_arg *a = arg;
	uint32_t buf[1024];

	for (uint32_t off = 0; off < SHARED_BYTES; off += sizeof(buf)) {
		for (unsigned k = 0; k < 1024; k++)
			buf[k] = off / 4 + k;
		if (send(a->fd, buf, sizeof(buf), 0) != sizeof(buf)) {
			a->ok = 0;
			return NULL;
		}
	}
	a->ok = 1;
	return NULL;
}

static void *shared_receiver(void *arg)
{
	struct shared_arg *a = arg;
	uint32_t buf[1024];

	for (uint32_t off = 0; off < SHARED_BYTES; off += sizeof(buf)) {
		if (read_full(a->fd, buf, sizeof(buf))) {
			a->ok = 0;
			return NULL;
		}
		for (unsigned k = 0; k < 1024; k++)
			if (buf[k] != off / 4 + k) {
				a->ok = 0;
				return NULL;
			}
	}
	a->ok = 1;
	return NULL;
}

static void test_shared_socket(void)
{
	int l = kernel_listener(7401), c = stack_connect(7401), s = accept(l, NULL, NULL);
	struct shared_arg tx = {c, 0}, rx = {c, 0};
	pthread_t ts, tr, te;

	/* the kernel side echoes; our two threads send and receive on one socket at once */
	pthread_create(&te, NULL, echo_server, (void *)(intptr_t)s);
	pthread_create(&tr, NULL, shared_receiver, &rx);
	pthread_create(&ts, NULL, shared_sender, &tx);
	pthread_join(ts, NULL);
	pthread_join(tr, NULL);
	shutdown(c, SHUT_WR);
	pthread_join(te, NULL);
	CHECK(is_accelerated(c) && tx.ok && rx.ok,
	      "one accelerated socket, one thread sending and one receiving: %u MiB echoed in order",
	      SHARED_BYTES >> 20);
	close(c);
	close(l);
}

/* ---- signals ----------------------------------------------------------------------------- */

static volatile sig_atomic_t handled;
static int handler_fd = -1;
static volatile sig_atomic_t handler_calls_ok = 1;

static void on_alarm(int sig)
{
	(void)sig;
	handled++;
}

static int ioctl_inq(int fd, int *v)
{
	return ioctl(fd, FIONREAD, v);
}

/* Makes socket calls on an accelerated socket, from wherever the thread was. */
static void on_alarm_calls(int sig)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	int v = 0;

	(void)sig;
	handled++;
	if (getsockname(handler_fd, (struct sockaddr *)&a, &l) || ioctl_inq(handler_fd, &v))
		handler_calls_ok = 0;
}

static void arm_timer(long usec, long interval_usec)
{
	struct itimerval it = {{0, interval_usec}, {0, usec}};

	setitimer(ITIMER_REAL, &it, NULL);
}

static void install(void (*fn)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigaction(SIGALRM, &sa, NULL);
}

static void test_signals(void)
{
	int l = kernel_listener(7402), c = stack_connect(7402), s = accept(l, NULL, NULL);
	char buf[64];
	ssize_t r;

	/* without SA_RESTART a blocking receive returns EINTR */
	install(on_alarm, 0);
	handled = 0;
	arm_timer(100000, 0);
	r = recv(c, buf, sizeof(buf), 0);
	CHECK(r < 0 && errno == EINTR && handled == 1,
	      "blocking recv, handler without SA_RESTART: EINTR (got %zd, %s)", r,
	      r < 0 ? strerror(errno) : "data");

	/* with SA_RESTART it carries on and gets the data sent after the signal */
	install(on_alarm, SA_RESTART);
	handled = 0;
	arm_timer(100000, 0);
	if (fork() == 0) { /* the sender: a kernel-side write 300 ms later */
		usleep(300000);
		_exit(send(s, "late", 4, 0) == 4 ? 0 : 1);
	}
	r = recv(c, buf, sizeof(buf), 0);
	CHECK(r == 4 && handled == 1, "blocking recv, handler with SA_RESTART: restarted, got the "
				      "data after it (got %zd, %d signal(s))", r, (int)handled);

	/* the same for a blocking accept on an INADDR_ANY listener (the stack and, for local
	 * clients, its kernel socket): EINTR without SA_RESTART, restarted with it */
	{
		struct sockaddr_in any = sin_of("0.0.0.0", 7403);
		int one = 1, la = socket(AF_INET, SOCK_STREAM, 0), a, err;
		pid_t pid;

		setsockopt(la, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(la, (struct sockaddr *)&any, sizeof(any)) || listen(la, 8)) {
			printf("FAIL INADDR_ANY listener: %s\n", strerror(errno));
			exit(1);
		}
		install(on_alarm, 0);
		handled = 0;
		arm_timer(100000, 0);
		a = accept(la, NULL, NULL);
		err = errno;
		CHECK(a < 0 && err == EINTR && handled == 1 && is_accelerated(la),
		      "blocking accept on an INADDR_ANY listener, handler without SA_RESTART: "
		      "EINTR (got %d, %s)", a, a < 0 ? strerror(err) : "a connection");
		install(on_alarm, SA_RESTART);
		handled = 0;
		arm_timer(100000, 0);
		pid = fork();
		if (pid == 0) { /* a kernel client through the tap, 300 ms later */
			struct sockaddr_in to = sin_of(STACK_IP, 7403);
			int k = socket(AF_INET, SOCK_STREAM, 0);
			usleep(300000);
			_exit(connect(k, (struct sockaddr *)&to, sizeof(to)) ? 1 : 0);
		}
		a = accept(la, NULL, NULL);
		CHECK(a >= 0 && handled == 1 && is_accelerated(a),
		      "blocking accept on an INADDR_ANY listener, handler with SA_RESTART: "
		      "restarted, accepted the connection through the stack (got %d, %s)", a,
		      a < 0 ? strerror(errno) : "fd");
		if (a >= 0)
			close(a);
		close(la);
	}

	/* a handler making socket calls while this thread is in socket calls all the time */
	install(on_alarm_calls, SA_RESTART);
	handler_fd = c;
	handled = 0;
	arm_timer(1000, 1000);
	for (int i = 0; i < 20000; i++) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		getpeername(c, (struct sockaddr *)&a, &al);
		send(c, "x", 1, MSG_DONTWAIT);
		recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	}
	arm_timer(0, 0);
	CHECK(handled > 0 && handler_calls_ok,
	      "a handler making socket calls, %d times, while the thread was in them: no deadlock",
	      (int)handled);
	close(c);
	close(s);
	close(l);
}

/* ---- a program that closes every fd --------------------------------------------------- */

/* A child closes every fd it has (close_range, then close() on each number, as daemons and
 * shells do before exec): the stack's own fds survive that, so a new connection still goes
 * through the stack. */
/* How many of this process's fds are the tap link's device and io_uring. */
static int link_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		char path[64], t[128];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		len = readlink(path, t, sizeof(t) - 1);
		if (len <= 0)
			continue;
		t[len] = '\0';
		n += !strcmp(t, "/dev/net/tun") || !strcmp(t, "anon_inode:[io_uring]");
	}
	return n;
}

static void test_close_all(void)
{
	int l = kernel_listener(7404), status = -1;
	pid_t pid = fork();

	if (pid == 0) {
		struct sockaddr_in to = sin_of(KERNEL_IP, 7404);
		int c, bad = 0, before = link_fds();

		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		close_range(3, ~0u, 0);
		if (before < 2 || link_fds() != before)
			_exit(4);
		c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&to, sizeof(to)) || !is_accelerated(c))
			_exit(2);
		bad |= send(c, "alive", 5, 0) != 5;
		close(c);
		_exit(bad ? 3 : 0);
	}
	{
		struct pollfd p = {.fd = l, .events = POLLIN};
		int s = poll(&p, 1, 5000) == 1 ? accept(l, NULL, NULL) : -1;
		char buf[8] = {0};
		int got = s >= 0 ? read_full(s, buf, 5) : -1;

		waitpid(pid, &status, 0);
		CHECK(got == 0 && !memcmp(buf, "alive", 5) && WIFEXITED(status) &&
			      WEXITSTATUS(status) == 0,
		      "a child that closed every fd (close() each, close_range) still connects "
		      "through the stack (exit status %d)",
		      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		if (s >= 0)
			close(s);
	}
	close(l);
}

/* ---- an option the stack lacks ------------------------------------------------------- */

/* Set before bind, it leaves the socket with the kernel, and the kernel's bind answers: on
 * the tap the stack's address is not the kernel's. */
static void test_option_the_stack_lacks(void)
{
	struct sockaddr_in a = sin_of(STACK_IP, 7405);
	int one = 1, u = socket(AF_INET, SOCK_DGRAM, 0), rc, err;

	setsockopt(u, IPPROTO_IP, IP_RECVOPTS, &one, sizeof(one));
	rc = bind(u, (struct sockaddr *)&a, sizeof(a));
	err = errno;
	CHECK(rc < 0 && err == EADDRNOTAVAIL,
	      "bind to the stack's address after an option the stack lacks: the kernel's "
	      "EADDRNOTAVAIL (got %d, %s)", rc, rc < 0 ? strerror(err) : "bound");
	close(u);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	test_threads();
	test_shared_socket();
	test_signals();
	test_close_all();
	test_option_the_stack_lacks();
	printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
	return failures != 0;
}
