/*
 * tests/intercept/info_check.c — what the kernel tells a program about its sockets, told
 * by the stack for accelerated ones: TCP_INFO of a connection through the stack (checked
 * against the kernel peer's own TCP_INFO), the ancillary data recvmsg gives (IP_PKTINFO,
 * IP_TTL, IP_TOS, SO_TIMESTAMP(NS)) with MSG_CTRUNC when it does not fit, and IP_TOS/IP_TTL
 * on what the stack sends. Runs under libonramp.so on the tap test_intercept.sh makes: the
 * peer is the kernel side of the tap (198.18.77.1), the stack is 198.18.77.2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/tcp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define TCP_STATE_ESTABLISHED 1 /* Linux's (netinet/tcp.h, which linux/tcp.h excludes) */
#define BULK		      100000

static int64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Wait up to ms for fd to be readable. */
static int wait_in(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms);
}

/* The interface holding the kernel's address on the tap: the stack's link. */
static int tap_ifindex(void)
{
	struct ifaddrs *ifa, *i;
	struct in_addr k;
	int idx = 0;

	inet_pton(AF_INET, KERNEL_IP, &k);
	if (getifaddrs(&ifa) < 0)
		return 0;
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == k.s_addr)
			idx = (int)if_nametoindex(i->ifa_name);
	freeifaddrs(ifa);
	return idx;
}

/* ---- TCP_INFO ----------------------------------------------------------------------------- */

/* A connection from the stack to a kernel listener; *srv is the kernel's end. */
static int tcp_pair(int port, int *srv)
{
	struct sockaddr_in ka = sin_of(KERNEL_IP, port);
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0), c;

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&ka, sizeof(ka)) < 0 || listen(l, 4) < 0) {
		printf("FAIL kernel listener on %s: %s\n", KERNEL_IP, strerror(errno));
		exit(1);
	}
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&ka, sizeof(ka)) < 0) {
		printf("FAIL connect through the stack: %s\n", strerror(errno));
		exit(1);
	}
	*srv = accept(l, NULL, NULL);
	close(l);
	return c;
}

static void check_tcp_info(void)
{
	static char buf[BULK];
	struct tcp_info ti, peer;
	socklen_t len = sizeof(ti), plen = sizeof(peer);
	int srv, c = tcp_pair(7400, &srv);
	size_t sent = 0, got = 0;
	char cc[16] = "";
	uint8_t small[8];

	CHECK(is_accelerated(c), "tcp: the connection goes through the stack");
	while (sent < BULK) {
		ssize_t n = send(c, buf + sent, BULK - sent, 0);
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	while (got < BULK && wait_in(srv, 2000) > 0) {
		ssize_t n = recv(srv, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	CHECK(sent == BULK && got == BULK, "tcp: %zu bytes sent, %zu received by the kernel", sent,
	      got);
	usleep(200000); /* the kernel's last (delayed) ACK */
	memset(&ti, 0, sizeof(ti));
	CHECK(getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && len == sizeof(ti),
	      "tcp_info: read, optlen %u (the whole struct)", len);
	CHECK(ti.tcpi_state == TCP_STATE_ESTABLISHED, "tcp_info: state %u is ESTABLISHED",
	      ti.tcpi_state);
	CHECK(ti.tcpi_rtt > 0 && ti.tcpi_snd_cwnd > 0, "tcp_info: rtt %u us, cwnd %u segments",
	      ti.tcpi_rtt, ti.tcpi_snd_cwnd);
	CHECK(ti.tcpi_bytes_acked == BULK + 1, "tcp_info: bytes_acked %llu is what was sent + SYN",
	      (unsigned long long)ti.tcpi_bytes_acked);
	CHECK(ti.tcpi_bytes_sent >= BULK && ti.tcpi_data_segs_out > 0,
	      "tcp_info: bytes_sent %llu, data_segs_out %u", (unsigned long long)ti.tcpi_bytes_sent,
	      ti.tcpi_data_segs_out);
	CHECK(ti.tcpi_options & TCPI_OPT_SACK, "tcp_info: SACK negotiated with Linux (options %#x)",
	      ti.tcpi_options);
	if (getsockopt(srv, IPPROTO_TCP, TCP_INFO, &peer, &plen) == 0)
		CHECK(peer.tcpi_bytes_received == ti.tcpi_bytes_acked - 1,
		      "tcp_info: the kernel peer received %llu bytes, as the stack says",
		      (unsigned long long)peer.tcpi_bytes_received);
	len = sizeof(small);
	CHECK(getsockopt(c, IPPROTO_TCP, TCP_INFO, small, &len) == 0 && len == sizeof(small) &&
		  small[0] == TCP_STATE_ESTABLISHED,
	      "tcp_info: a short optlen gets what fits (%u bytes)", len);
	len = sizeof(cc);
	CHECK(getsockopt(c, IPPROTO_TCP, TCP_CONGESTION, cc, &len) == 0 && strcmp(cc, "cubic") == 0,
	      "tcp: TCP_CONGESTION is the stack's \"%s\"", cc);
	close(srv);
	close(c);
}

/* ---- recvmsg's ancillary data ------------------------------------------------------------ */

/* TCP: Linux gives SO_TIMESTAMPNS on a stream socket too. */
static void check_tcp_timestamp(void)
{
	int srv, c = tcp_pair(7401, &srv), on = 1;
	char data[8], cbuf[64];
	struct iovec iov = {data, sizeof(data)};
	struct msghdr m = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm;
	struct timespec ts = {0, 0};
	ssize_t n;

	setsockopt(c, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
	send(srv, "hi", 2, 0);
	wait_in(c, 2000);
	n = recvmsg(c, &m, 0);
	cm = CMSG_FIRSTHDR(&m);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS)
		memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
	CHECK(n == 2 && ts.tv_sec &&
		  llabs(real_ns() - (ts.tv_sec * 1000000000LL + ts.tv_nsec)) < 1000000000LL,
	      "tcp recvmsg: SO_TIMESTAMPNS within a second of now");
	close(srv);
	close(c);
}

struct udp_cmsgs {
	int n, ttl, tos, ifindex;
	struct in_addr spec_dst, addr;
	int64_t stamp_ns;
};

static void cmsgs_read(struct msghdr *m, struct udp_cmsgs *u)
{
	memset(u, 0, sizeof(*u));
	u->ttl = u->tos = -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
		u->n++;
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_TIMESTAMPNS) {
			struct timespec ts;
			memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
			u->stamp_ns = ts.tv_sec * 1000000000LL + ts.tv_nsec;
		} else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			u->ifindex = pi.ipi_ifindex;
			u->spec_dst = pi.ipi_spec_dst;
			u->addr = pi.ipi_addr;
		} else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TTL) {
			memcpy(&u->ttl, CMSG_DATA(cm), sizeof(int));
		} else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TOS) {
			u->tos = *(uint8_t *)CMSG_DATA(cm);
		}
	}
}

static ssize_t recv_with(int fd, char *cbuf, size_t clen, struct msghdr *m)
{
	static char data[64];
	static struct iovec iov = {data, sizeof(data)};

	memset(m, 0, sizeof(*m));
	m->msg_iov = &iov;
	m->msg_iovlen = 1;
	m->msg_control = cbuf;
	m->msg_controllen = clen;
	wait_in(fd, 2000);
	return recvmsg(fd, m, MSG_DONTWAIT);
}

static void check_udp(void)
{
	struct sockaddr_in sa = sin_of(STACK_IP, 7402), ka = sin_of(KERNEL_IP, 7403), kn;
	socklen_t kl = sizeof(kn);
	int s = socket(AF_INET, SOCK_DGRAM, 0), k = socket(AF_INET, SOCK_DGRAM, 0), on = 1, s2;
	int tos = 0x28, ttl = 17;
	char cbuf[256];
	struct msghdr m;
	struct udp_cmsgs u;
	ssize_t n;

	/* set before bind: given to the stack socket when it is made */
	setsockopt(s, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
	setsockopt(s, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
	setsockopt(s, IPPROTO_IP, IP_RECVTTL, &on, sizeof(on));
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    bind(k, (struct sockaddr *)&ka, sizeof(ka)) < 0) {
		printf("FAIL udp bind: %s\n", strerror(errno));
		exit(1);
	}
	/* on tap the kernel twin of a socket bound to the stack's address stays unbound */
	CHECK(syscall(SYS_getsockname, s, &kn, &kl) == 0 && kn.sin_port == 0,
	      "udp: the socket bound to the stack's address is accelerated");
	sendto(k, "dgram", 5, 0, (struct sockaddr *)&sa, sizeof(sa));
	n = recv_with(s, cbuf, sizeof(cbuf), &m);
	cmsgs_read(&m, &u);
	CHECK(n == 5 && !(m.msg_flags & MSG_CTRUNC) && u.n == 3,
	      "udp recvmsg: %zd bytes with %d control messages", n, u.n);
	CHECK(u.addr.s_addr == sa.sin_addr.s_addr && u.spec_dst.s_addr == sa.sin_addr.s_addr,
	      "udp IP_PKTINFO: destination %s is the stack's address", inet_ntoa(u.addr));
	CHECK(u.ifindex > 0 && u.ifindex == tap_ifindex(),
	      "udp IP_PKTINFO: ifindex %d is the tap's", u.ifindex);
	CHECK(u.ttl == 64, "udp IP_TTL: %d from a Linux peer", u.ttl);
	CHECK(u.stamp_ns && llabs(real_ns() - u.stamp_ns) < 1000000000LL,
	      "udp SO_TIMESTAMPNS: within a second of now");

	/* room for the time stamp only: the rest is cut, MSG_CTRUNC says so */
	sendto(k, "dgram", 5, 0, (struct sockaddr *)&sa, sizeof(sa));
	n = recv_with(s, cbuf, CMSG_SPACE(sizeof(struct timespec)), &m);
	cmsgs_read(&m, &u);
	CHECK(n == 5 && (m.msg_flags & MSG_CTRUNC) && u.stamp_ns &&
		  m.msg_controllen == CMSG_SPACE(sizeof(struct timespec)),
	      "udp recvmsg: a short msg_controllen gives MSG_CTRUNC (controllen %zu)",
	      (size_t)m.msg_controllen);
	sendto(k, "dgram", 5, 0, (struct sockaddr *)&sa, sizeof(sa));
	n = recv_with(s, NULL, 0, &m);
	CHECK(n == 5 && (m.msg_flags & MSG_CTRUNC) && m.msg_controllen == 0,
	      "udp recvmsg: no control buffer at all: MSG_CTRUNC");

	/* IP_TOS and IP_TTL on what the stack sends, as the kernel receives it: set on a socket
	 * accelerated already, so that only the stack can honour them */
	s2 = socket(AF_INET, SOCK_DGRAM, 0);
	sa.sin_port = htons(7404);
	kl = sizeof(kn);
	CHECK(bind(s2, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		  syscall(SYS_getsockname, s2, &kn, &kl) == 0 && kn.sin_port == 0,
	      "udp: a second socket on the stack's address is accelerated");
	setsockopt(k, IPPROTO_IP, IP_RECVTOS, &on, sizeof(on));
	setsockopt(k, IPPROTO_IP, IP_RECVTTL, &on, sizeof(on));
	CHECK(setsockopt(s2, IPPROTO_IP, IP_TOS, &tos, sizeof(tos)) == 0 &&
		  setsockopt(s2, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) == 0,
	      "udp: IP_TOS and IP_TTL set");
	sendto(s2, "back", 4, 0, (struct sockaddr *)&ka, sizeof(ka));
	n = recv_with(k, cbuf, sizeof(cbuf), &m);
	cmsgs_read(&m, &u);
	CHECK(n == 4 && u.tos == tos && u.ttl == ttl, "udp send: the kernel sees tos %#x, ttl %d",
	      u.tos, u.ttl);
	close(s2);
	close(s);
	close(k);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	check_tcp_info();
	check_tcp_timestamp();
	check_udp();
	printf("%s\n", failures ? "info_check: FAILED" : "info_check: all passed");
	return failures ? 1 : 0;
}
