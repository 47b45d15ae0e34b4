/*
 * tests/intercept/exec_check.c — accelerated sockets across exec under libonramp.so
 * (design §8). Run on the tap the stack creates (tests/integration/test_intercept.sh): the
 * peers are kernel sockets on the tap's kernel side (198.18.77.1), the stack is 198.18.77.2.
 *
 *   1. A forked child execs this program with a connection the parent made: the new image
 *      sends and receives on it, and opens a connection of its own through the stack, while
 *      the parent keeps using its copy.
 *   2. The process itself execs (nobody else is left to drive the stack): the new image
 *      carries on over the inherited connection, and a connection opened close-on-exec is
 *      gone, its peer seeing the FIN, so exec leaks no socket.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static const char *self;

static int kernel_listener(int port)
{
	struct sockaddr_in a = sin_of(KERNEL_IP, port);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 8)) {
		printf("FAIL kernel listener on %s:%d: %s\n", KERNEL_IP, port, strerror(errno));
		exit(1);
	}
	return l;
}

static int stack_connect(int port, int flags)
{
	struct sockaddr_in a = sin_of(KERNEL_IP, port);
	int c = socket(AF_INET, SOCK_STREAM | flags, 0);

	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a))) {
		printf("FAIL connect to %s:%d: %s\n", KERNEL_IP, port, strerror(errno));
		exit(1);
	}
	return c;
}

/* The kernel side's peer is the stack's address: the connection crossed the tap from it. */
static int from_stack(int kernel_fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	char ip[INET_ADDRSTRLEN] = "";

	if (getpeername(kernel_fd, (struct sockaddr *)&a, &l))
		return 0;
	inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
	return !strcmp(ip, STACK_IP);
}

/* n bytes within 5 s, or -1. */
static int recv_n(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, 5000) != 1)
			return -1;
		r = recv(fd, buf + got, n - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int exchange(int a, int b, const char *msg)
{
	char buf[64] = {0};
	size_t n = strlen(msg);

	return send(a, msg, n, 0) == (ssize_t)n && recv_n(b, buf, n) == 0 && !memcmp(buf, msg, n);
}

/* ---- the images that exec starts ------------------------------------------------------ */

/* Case 1, in the forked child's new image: fd is the parent's connection. */
static int child_image(int fd)
{
	int l = kernel_listener(7512), c, s;

	CHECK(is_accelerated(fd), "exec'd child: the inherited connection is still accelerated");
	CHECK(send(fd, "ping-exec", 9, 0) == 9, "exec'd child: sends on the inherited connection");
	{
		char buf[8] = {0};
		CHECK(recv_n(fd, buf, 4) == 0 && !memcmp(buf, "pong", 4),
		      "exec'd child: receives on the inherited connection");
	}
	c = stack_connect(7512, 0);
	s = accept(l, NULL, NULL);
	CHECK(is_accelerated(c) && s >= 0 && from_stack(s) && exchange(c, s, "new") &&
		      exchange(s, c, "back"),
	      "exec'd child: a new connection goes through the inherited stack");
	close(c);
	close(s);
	close(l);
	close(fd);
	return failures != 0;
}

/* Case 2, in the process's own new image. */
static int solo_image(int c, int s, int s2)
{
	char buf[8];
	struct pollfd p = {.fd = s2, .events = POLLIN};

	CHECK(is_accelerated(c) && from_stack(s),
	      "exec'd process: the inherited connection is still accelerated");
	CHECK(exchange(c, s, "solo-out") && exchange(s, c, "solo-in"),
	      "exec'd process, the stack's only one: data both ways on the inherited connection");
	/* the close-on-exec connection's socket went with the exec: its peer sees the FIN */
	CHECK(poll(&p, 1, 5000) == 1 && recv(s2, buf, sizeof(buf), 0) == 0,
	      "exec'd process: a close-on-exec connection was closed by the exec (peer sees EOF)");
	close(c);
	close(s);
	close(s2);
	printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
	return failures != 0;
}

/* ---- the first image ------------------------------------------------------------------ */

static void fd_arg(char *buf, size_t n, int fd)
{
	snprintf(buf, n, "%d", fd);
}

int main(int argc, char **argv)
{
	int l, c, s, status = -1;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	self = argv[0];
	if (argc == 3 && !strcmp(argv[1], "child"))
		return child_image(atoi(argv[2]));
	if (argc == 5 && !strcmp(argv[1], "solo"))
		return solo_image(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));

	/* case 1: a forked child execs with the connection */
	l = kernel_listener(7511);
	c = stack_connect(7511, 0);
	s = accept(l, NULL, NULL);
	CHECK(is_accelerated(c) && from_stack(s), "parent: connection through the stack");
	pid = fork();
	if (pid == 0) {
		char a[16];
		fd_arg(a, sizeof(a), c);
		execl(self, self, "child", a, (char *)NULL);
		_exit(127);
	}
	{
		char buf[16] = {0};
		CHECK(recv_n(s, buf, 9) == 0 && !memcmp(buf, "ping-exec", 9) && send(s, "pong", 4, 0) == 4,
		      "parent's peer: got what the exec'd child sent, answered");
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exec'd child: exit status %d",
	      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	CHECK(exchange(c, s, "after") && exchange(s, c, "reply"),
	      "parent: its copy of the connection works after the child exec'd and exited");
	close(l);

	/* case 2: this process execs; one connection goes along, one is close-on-exec */
	{
		int l2 = kernel_listener(7513), c2 = stack_connect(7513, SOCK_CLOEXEC);
		int s2 = accept(l2, NULL, NULL);
		char a[16], b[16], d[16];

		close(l2);
		if (failures) {
			printf("FAILED: %d failure(s)\n", failures);
			return 1;
		}
		(void)c2;
		fd_arg(a, sizeof(a), c);
		fd_arg(b, sizeof(b), s);
		fd_arg(d, sizeof(d), s2);
		execl(self, self, "solo", a, b, d, (char *)NULL);
		printf("FAIL exec: %s\n", strerror(errno));
	}
	return 1;
}
