/*
 * tests/intercept/oob_check.c — TCP urgent data (MSG_OOB) between an accelerated socket and
 * a Linux kernel socket, both ways: the kernel sends "ab", "c" urgent, "de" and the
 * accelerated receiver sees POLLPRI (poll, select's exceptfds, epoll), reads "ab", is at the
 * mark (SIOCATMARK), gets 'c' from recv(MSG_OOB) and "de" after it; the accelerated socket
 * sends the same and the kernel's receiver sees the same; with SO_OOBINLINE on both sides
 * the byte stays in the stream. Runs under libonramp.so on the tap test_intercept.sh makes:
 * the peer is the kernel side of the tap (198.18.77.1), the stack is 198.18.77.2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"

/* A connection from the stack to a kernel listener; *srv is the kernel's end. `inline_both`:
 * SO_OOBINLINE on the stack's socket before it connects (kept while it waits to be
 * accelerated, then handed to the stack) and on the kernel's listener (inherited). */
static int tcp_pair(int port, int *srv, int inline_both)
{
	struct sockaddr_in ka = sin_of(KERNEL_IP, port), pa;
	socklen_t pl = sizeof(pa);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0), c;
	char ip[INET_ADDRSTRLEN] = "";

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (inline_both)
		setsockopt(l, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&ka, sizeof(ka)) < 0 || listen(l, 4) < 0) {
		printf("FAIL kernel listener on %s: %s\n", KERNEL_IP, strerror(errno));
		exit(1);
	}
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (inline_both)
		CHECK(setsockopt(c, SOL_SOCKET, SO_OOBINLINE, &one, sizeof(one)) == 0,
		      "SO_OOBINLINE set before connect");
	if (connect(c, (struct sockaddr *)&ka, sizeof(ka)) < 0) {
		printf("FAIL connect through the stack: %s\n", strerror(errno));
		exit(1);
	}
	*srv = accept(l, (struct sockaddr *)&pa, &pl);
	close(l);
	inet_ntop(AF_INET, &pa.sin_addr, ip, sizeof(ip));
	CHECK(is_accelerated(c) && strcmp(ip, STACK_IP) == 0,
	      "port %d: the connection goes through the stack (the kernel's peer is %s)", port, ip);
	return c;
}

/* The waits below go on through an EINTR: the SIGURG the test asks for may interrupt them
 * (poll, select and epoll_wait are never restarted). */
static int wait_ev(int fd, short ev, int ms)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int n;

	while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	return n == 1 ? p.revents : 0;
}

static int select_except(int fd, fd_set *e)
{
	int n;

	do {
		struct timeval tv = {2, 0};
		FD_ZERO(e);
		FD_SET(fd, e);
		n = select(fd + 1, NULL, NULL, e, &tv);
	} while (n < 0 && errno == EINTR);
	return n;
}

static int epoll_wait_one(int ep, struct epoll_event *out)
{
	int n;

	while ((n = epoll_wait(ep, out, 1, 2000)) < 0 && errno == EINTR)
		;
	return n;
}

/* Send "ab", "c" urgent, "de" from fd. */
static void send_ab_c_de(int fd, const char *who)
{
	CHECK(send(fd, "ab", 2, 0) == 2 && send(fd, "c", 1, MSG_OOB) == 1 &&
		  send(fd, "de", 2, 0) == 2,
	      "%s: sent \"ab\", \"c\" with MSG_OOB, \"de\" (%s)", who, strerror(errno));
}

/* Read n bytes of the stream (waiting up to 2 s), each read as it comes. */
static size_t read_stream(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n && (wait_ev(fd, POLLIN, 2000) & POLLIN)) {
		ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* fd has "ab", urgent 'c', "de" coming: what a reader sees out of band. */
static void check_oob_reader(int fd, const char *who, int stack_side)
{
	char buf[16] = "";
	int mark = -1, rev = wait_ev(fd, POLLPRI, 2000);
	ssize_t n;

	CHECK(rev & POLLPRI, "%s: poll reports POLLPRI (revents %#x)", who, rev);
	if (stack_side) {
		fd_set e;
		struct epoll_event ev = {.events = EPOLLPRI}, out;
		int ep = epoll_create1(0);

		CHECK(select_except(fd, &e) == 1 && FD_ISSET(fd, &e),
		      "%s: select reports it in exceptfds", who);
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		CHECK(epoll_wait_one(ep, &out) == 1 && (out.events & EPOLLPRI),
		      "%s: epoll reports EPOLLPRI", who);
		close(ep);
	}
	n = recv(fd, buf, sizeof(buf), MSG_WAITALL);
	CHECK(n == 2 && memcmp(buf, "ab", 2) == 0,
	      "%s: a read stops at the mark, MSG_WAITALL too: %zd \"%.*s\"",
	      who, n, n > 0 ? (int)n : 0, buf);
	CHECK(ioctl(fd, SIOCATMARK, &mark) == 0 && mark == 1, "%s: SIOCATMARK %d at the mark", who,
	      mark);
	buf[0] = 0;
	n = recv(fd, buf, sizeof(buf), MSG_OOB | MSG_PEEK);
	CHECK(n == 1 && buf[0] == 'c', "%s: recv(MSG_OOB|MSG_PEEK) gives 'c' (%zd, %s)", who, n,
	      n < 0 ? strerror(errno) : "");
	buf[0] = 0;
	n = recv(fd, buf, sizeof(buf), MSG_OOB);
	CHECK(n == 1 && buf[0] == 'c', "%s: recv(MSG_OOB) gives 'c' (%zd, %s)", who, n,
	      n < 0 ? strerror(errno) : "");
	errno = 0;
	n = recv(fd, buf, sizeof(buf), MSG_OOB);
	CHECK(n == -1 && errno == EINVAL, "%s: a second recv(MSG_OOB): EINVAL (%s)", who,
	      strerror(errno));
	n = (ssize_t)read_stream(fd, buf, 2);
	CHECK(n == 2 && memcmp(buf, "de", 2) == 0, "%s: the stream goes on with \"de\": \"%.*s\"",
	      who, (int)n, buf);
	CHECK(ioctl(fd, SIOCATMARK, &mark) == 0 && mark == 0, "%s: past the mark, SIOCATMARK %d",
	      who, mark);
	CHECK(!(wait_ev(fd, POLLPRI, 0) & POLLPRI), "%s: no POLLPRI once read", who);
}

/* fd has "ab", urgent 'c', "de" coming, with SO_OOBINLINE: the byte is in the stream. */
static void check_inline_reader(int fd, const char *who)
{
	char buf[16] = "";
	int mark = -1;
	size_t n;

	CHECK(wait_ev(fd, POLLPRI, 2000) & POLLPRI, "%s: inline: POLLPRI still", who);
	n = read_stream(fd, buf, 2);
	CHECK(n == 2 && memcmp(buf, "ab", 2) == 0, "%s: inline: \"ab\" first", who);
	CHECK(ioctl(fd, SIOCATMARK, &mark) == 0 && mark == 1, "%s: inline: SIOCATMARK %d", who,
	      mark);
	errno = 0;
	CHECK(recv(fd, buf, sizeof(buf), MSG_OOB) == -1 && errno == EINVAL,
	      "%s: inline: recv(MSG_OOB) EINVAL (%s)", who, strerror(errno));
	n = read_stream(fd, buf, 3);
	CHECK(n == 3 && memcmp(buf, "cde", 3) == 0, "%s: inline: then \"%.*s\" (\"cde\")", who,
	      (int)n, buf);
}

static volatile sig_atomic_t sigurgs;

static void on_sigurg(int sig)
{
	(void)sig;
	sigurgs++;
}

/* The owner set with F_SETOWN gets SIGURG when urgent data is announced. */
static void check_sigurg(const char *who)
{
	for (int i = 0; i < 100 && !sigurgs; i++)
		usleep(10000);
	CHECK(sigurgs == 1, "%s: SIGURG to the F_SETOWN owner (%d)", who, (int)sigurgs);
	sigurgs = 0;
}

int main(void)
{
	int srv, c, v = 0;
	socklen_t vl = sizeof(v);

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGURG, on_sigurg);

	c = tcp_pair(7410, &srv, 0);
	fcntl(c, F_SETOWN, getpid());
	send_ab_c_de(srv, "kernel -> stack");
	check_oob_reader(c, "stack reader", 1);
	check_sigurg("stack reader");
	close(srv);
	close(c);

	c = tcp_pair(7411, &srv, 0);
	fcntl(srv, F_SETOWN, getpid());
	send_ab_c_de(c, "stack -> kernel");
	check_oob_reader(srv, "kernel reader", 0);
	check_sigurg("kernel reader");
	close(srv);
	close(c);

	c = tcp_pair(7412, &srv, 1);
	CHECK(getsockopt(c, SOL_SOCKET, SO_OOBINLINE, &v, &vl) == 0 && v == 1,
	      "SO_OOBINLINE reads back %d on the accelerated socket", v);
	send_ab_c_de(srv, "kernel -> stack, inline");
	check_inline_reader(c, "stack reader");
	send_ab_c_de(c, "stack -> kernel, inline");
	check_inline_reader(srv, "kernel reader");
	close(srv);
	close(c);

	{
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in ka = sin_of(KERNEL_IP, 7413);

		errno = 0;
		CHECK(sendto(u, "x", 1, MSG_OOB, (struct sockaddr *)&ka, sizeof(ka)) == -1 &&
			  errno == EOPNOTSUPP,
		      "udp: sendto(MSG_OOB) EOPNOTSUPP (%s)", strerror(errno));
		close(u);
	}
	printf("%s\n", failures ? "oob_check: FAILED" : "oob_check: all passed");
	return failures ? 1 : 0;
}
