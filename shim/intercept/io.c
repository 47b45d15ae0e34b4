/*
 * shim/intercept/io.c — the data calls on accelerated sockets: read/write and the recv/send
 * families, their _FORTIFY_SOURCE variants, and sendfile. Linux's rules: a blocking TCP
 * receive returns what is there once something is (all of it with MSG_WAITALL), a blocking
 * TCP send returns when everything is queued (less when a signal or SO_SNDTIMEO ends it after
 * some progress), a datagram is one send and one receive, EPIPE raises SIGPIPE unless
 * MSG_NOSIGNAL.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sockcall.h"

#define EXPORT __attribute__((visibility("default")))

#define DGRAM_MAX 65536 /* a datagram gathered from, or scattered to, several iovecs */

extern void __chk_fail(void) __attribute__((noreturn));

int onr_sock_inq(struct stack *s, uint32_t id)
{
	struct stack_sock *so = sock_get(s, id);
	ssize_t n;

	if (!so)
		return 0;
	if (so->type == SOCK_T_TCP)
		return (int)so->rxq_bytes;
	n = sock_recv(s, id, NULL, 0, SOCK_MSG_PEEK | SOCK_MSG_TRUNC | SOCK_MSG_DONTWAIT, NULL);
	return n > 0 ? (int)n : 0;
}

static struct onr_fd *stack_fd(int fd)
{
	struct onr_fd *e = onr_fd_get(fd);

	return e && e->kind == ONR_FD_STACK ? e : NULL;
}

/* ---- receive -------------------------------------------------------------------------- */

struct recv_arg {
	void *buf;
	size_t len;
	int flags;
	struct sock_addr from;
	struct sock_rx_info *info; /* recvmsg: what the data read carried; else NULL */
	bool at_mark;		   /* TCP: the read stopped at the urgent mark */
};

static long op_recv(struct stack *s, const struct onr_fd *e, void *arg)
{
	struct recv_arg *ra = arg;
	struct sock_rx_info got;
	long rc;

	rc = sock_recvmsg(s, e->id, ra->buf, ra->len, ra->flags & (MSG_PEEK | MSG_TRUNC | MSG_OOB),
			  &ra->from, ra->info ? &got : NULL);
	/* kept from the last receive that read something: a TCP recvmsg over several
	 * iovecs ends with one that finds nothing */
	if (ra->info && got.arrival_ns)
		*ra->info = got;
	ra->at_mark = rc > 0 && e->type == SOCK_T_TCP && sock_at_mark(s, e->id) > 0;
	return rc;
}

/* One receive into a flat buffer; TCP MSG_WAITALL loops until len, EOF, error or signal. */
static ssize_t recv_flat(struct onr_fd *e, void *buf, size_t len, int flags, struct sock_addr *from,
			 struct sock_rx_info *info)
{
	bool nonblock = (e->flags & ONR_FDF_NONBLOCK) || (flags & MSG_DONTWAIT);
	struct recv_arg ra = {buf, len, flags, {0, 0}, info, false};
	size_t got = 0;
	long rc;

	/* Linux's TCP and UDP receive ignore the flags they have no use for (MSG_NOSIGNAL,
	 * which sockperf passes, among them); the error queue is not kept */
	if (flags & MSG_ERRQUEUE)
		return -EAGAIN;
	if (flags & MSG_OOB) {
		/* TCP's urgent byte never waits (Linux's tcp_recv_urg): EAGAIN until it came */
		if (e->type != SOCK_T_TCP)
			return -EINVAL;
		return onr_blocking(e, true, SOCK_EV_IN, 0, op_recv, &ra);
	}
	for (;;) {
		ra.buf = (char *)buf + got;
		ra.len = len - got;
		rc = onr_blocking(e, nonblock, SOCK_EV_IN, e->rcvtimeo_ns, op_recv, &ra);
		if (rc < 0)
			return got ? (ssize_t)got : rc;
		got += (size_t)rc;
		if (from)
			*from = ra.from;
		/* MSG_WAITALL stops at the urgent mark too, as Linux's does */
		if (e->type != SOCK_T_TCP || !(flags & MSG_WAITALL) || (flags & MSG_PEEK) ||
		    rc == 0 || got >= len || nonblock || ra.at_mark)
			return e->type == SOCK_T_TCP ? (ssize_t)got : rc;
	}
}

static size_t iov_total(const struct iovec *iov, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* Receive into iovecs. *truncated is set for a datagram longer than the buffers; info
 * (when not NULL) gets what the data read carried. */
static ssize_t recv_iov(struct onr_fd *e, const struct iovec *iov, int n, int flags,
			struct sock_addr *from, bool *truncated, struct sock_rx_info *info)
{
	size_t total;
	ssize_t rc;

	if (n < 0 || n > IOV_MAX)
		return -EINVAL;
	total = iov_total(iov, n);
	if (n == 1 || (n == 0 && e->type == SOCK_T_UDP)) {
		rc = recv_flat(e, n ? iov[0].iov_base : NULL, total, flags | MSG_TRUNC, from, info);
		if (rc >= 0 && e->type == SOCK_T_UDP) {
			*truncated = (size_t)rc > total;
			if (!(flags & MSG_TRUNC) && (size_t)rc > total)
				rc = (ssize_t)total;
		}
		return rc;
	}
	if (e->type == SOCK_T_UDP) {
		char dgram[DGRAM_MAX];
		size_t off = 0, len;

		rc = recv_flat(e, dgram, sizeof(dgram), flags | MSG_TRUNC, from, info);
		if (rc < 0)
			return rc;
		len = (size_t)rc < total ? (size_t)rc : total;
		for (int i = 0; i < n && off < len; i++) {
			size_t k = iov[i].iov_len < len - off ? iov[i].iov_len : len - off;
			memcpy(iov[i].iov_base, dgram + off, k);
			off += k;
		}
		*truncated = (size_t)rc > total;
		return (flags & MSG_TRUNC) ? rc : (ssize_t)len;
	}
	/* TCP: fill the iovecs in order; wait only for the first byte (or all: WAITALL) */
	{
		size_t got = 0;
		for (int i = 0; i < n; i++) {
			if (!iov[i].iov_len)
				continue;
			rc = recv_flat(e, iov[i].iov_base, iov[i].iov_len,
				       got ? (flags | MSG_DONTWAIT) & ~MSG_WAITALL : flags, from,
				       info);
			if (rc < 0)
				return got ? (ssize_t)got : rc;
			got += (size_t)rc;
			if ((size_t)rc < iov[i].iov_len)
				break;
		}
		return (ssize_t)got;
	}
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a,
			socklen_t *len)
{
	struct onr_fd *e = stack_fd(fd);
	struct sock_addr from = {0, 0};
	ssize_t rc;

	ONR_REAL_READY();
	if (!e)
		return real_recvfrom(fd, buf, n, flags, a, len);
	rc = recv_flat(e, buf, n, flags, &from, NULL);
	if (rc >= 0 && e->type == SOCK_T_UDP && !(flags & MSG_TRUNC) && (size_t)rc > n)
		rc = (ssize_t)n;
	if (rc >= 0 && a && len)
		onr_sockaddr_out(&from, a, len);
	return onr_ret(rc);
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return recvfrom(fd, buf, n, flags, NULL, NULL);
}

EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	ONR_REAL_READY();
	if (!stack_fd(fd))
		return real_read(fd, buf, n);
	return recvfrom(fd, buf, n, 0, NULL, NULL);
}

EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return read(fd, buf, n);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		__chk_fail();
	return recv(fd, buf, n, flags);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
			      struct sockaddr *a, socklen_t *len)
{
	if (n > buflen)
		__chk_fail();
	return recvfrom(fd, buf, n, flags, a, len);
}

EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	struct onr_fd *e = stack_fd(fd);
	bool trunc = false;

	ONR_REAL_READY();
	if (!e)
		return real_readv(fd, iov, n);
	return onr_ret(recv_iov(e, iov, n, 0, NULL, &trunc, NULL));
}

/*
 * One control message into m's control buffer, `used` bytes of it taken already, as Linux's
 * put_cmsg: one that does not fit is cut to the room left (nothing when not even its header
 * fits) and MSG_CTRUNC is set.
 */
static void cmsg_put(struct msghdr *m, size_t *used, int level, int type, const void *data,
		     size_t len)
{
	size_t room = m->msg_control ? m->msg_controllen - *used : 0, cmlen = CMSG_LEN(len);
	char *at = (char *)m->msg_control + *used;
	struct cmsghdr h;

	if (room < sizeof(h)) {
		m->msg_flags |= MSG_CTRUNC;
		return;
	}
	if (room < cmlen) {
		m->msg_flags |= MSG_CTRUNC;
		cmlen = room;
	}
	h.cmsg_len = cmlen;
	h.cmsg_level = level;
	h.cmsg_type = type;
	/* the caller's buffer need not be aligned for a cmsghdr */
	memcpy(at, &h, sizeof(h));
	memcpy(at + sizeof(h), data, cmlen - sizeof(h));
	*used += CMSG_SPACE(len) < room ? CMSG_SPACE(len) : room;
}

/* SO_TIMESTAMP(NS), _OLD or _NEW: the arrival (stack clock, CLOCK_MONOTONIC) as the wall
 * clock time Linux stamps packets with. */
static void cmsg_put_tstamp(struct msghdr *m, size_t *used, const struct sock_rx_info *info)
{
	struct timespec mono, real;
	int64_t ns, t[2];
	bool new_names = info->opts & SOCK_RXO_TS_NEW;

	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	ns = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec -
	     ((int64_t)mono.tv_sec * 1000000000 + mono.tv_nsec - (int64_t)info->arrival_ns);
	t[0] = ns / 1000000000;
	t[1] = ns % 1000000000;
	if (info->opts & SOCK_RXO_TS_NS) {
		struct timespec ts = {.tv_sec = t[0], .tv_nsec = t[1]};
		if (new_names)
			cmsg_put(m, used, SOL_SOCKET, SO_TIMESTAMPNS_NEW, t, sizeof(t));
		else
			cmsg_put(m, used, SOL_SOCKET, SO_TIMESTAMPNS_OLD, &ts, sizeof(ts));
	} else {
		struct timeval tv = {.tv_sec = t[0], .tv_usec = t[1] / 1000};
		t[1] /= 1000;
		if (new_names)
			cmsg_put(m, used, SOL_SOCKET, SO_TIMESTAMP_NEW, t, sizeof(t));
		else
			cmsg_put(m, used, SOL_SOCKET, SO_TIMESTAMP_OLD, &tv, sizeof(tv));
	}
}

/* The ancillary data Linux's udp_recvmsg or tcp_recvmsg gives, in its order: the time
 * stamp, then (UDP) IP_PKTINFO, IP_TTL, IP_TOS. Sets msg_controllen to what was written. */
static void recvmsg_cmsgs(const struct onr_fd *e, struct msghdr *m, const struct sock_rx_info *info)
{
	size_t used = 0;

	if (info->arrival_ns && (info->opts & SOCK_RXO_TSTAMP))
		cmsg_put_tstamp(m, &used, info);
	if (info->arrival_ns && e->type == SOCK_T_UDP) {
		if (info->opts & SOCK_RXO_PKTINFO) {
			struct in_pktinfo pi = {
			    .ipi_ifindex = onr_stack_if_ready()->ifindex,
			    .ipi_spec_dst.s_addr = info->dst_be32, /* unicast: the address hit */
			    .ipi_addr.s_addr = info->dst_be32,
			};
			cmsg_put(m, &used, IPPROTO_IP, IP_PKTINFO, &pi, sizeof(pi));
		}
		if (info->opts & SOCK_RXO_TTL) {
			int ttl = info->ttl;
			cmsg_put(m, &used, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
		}
		if (info->opts & SOCK_RXO_TOS)
			cmsg_put(m, &used, IPPROTO_IP, IP_TOS, &info->tos, 1);
	}
	m->msg_controllen = used;
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	struct onr_fd *e = stack_fd(fd);
	struct sock_addr from = {0, 0};
	struct sock_rx_info info = {0};
	bool trunc = false;
	ssize_t rc;

	ONR_REAL_READY();
	if (!e)
		return real_recvmsg(fd, m, flags);
	if (!m)
		return onr_ret(-EFAULT);
	rc = recv_iov(e, m->msg_iov, (int)m->msg_iovlen, flags, &from, &trunc, &info);
	if (rc < 0)
		return onr_ret(rc);
	m->msg_flags = (trunc ? MSG_TRUNC : 0) | (flags & MSG_OOB); /* urgent data says so */
	recvmsg_cmsgs(e, m, &info);
	if (m->msg_name) {
		socklen_t l = m->msg_namelen;
		if (e->type == SOCK_T_UDP) {
			onr_sockaddr_out(&from, m->msg_name, &l);
		} else {
			struct sock_addr p;
			if (onr_lock() == 0) {
				if (sock_getpeer(&onr_stack_if_ready()->stack, e->id, &p) == 0)
					onr_sockaddr_out(&p, m->msg_name, &l);
				onr_unlock();
			}
		}
		m->msg_namelen = l;
	}
	return rc;
}

/*
 * recvmmsg and sendmmsg on an accelerated socket: message by message. Returns how many went,
 * or -1 with errno when the first fails. A receive waits for the first message only; the
 * rest is what is there already (MSG_WAITFORONE).
 */
static int mmsg_each(int fd, struct mmsghdr *v, unsigned n, int flags, bool rx)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		ssize_t rc = rx ? recvmsg(fd, &v[i].msg_hdr, i ? flags | MSG_DONTWAIT : flags)
				: sendmsg(fd, &v[i].msg_hdr, flags);
		if (rc < 0) {
			if (i)
				break;
			return -1;
		}
		v[i].msg_len = (unsigned)rc;
	}
	return (int)i;
}

EXPORT int recvmmsg(int fd, struct mmsghdr *v, unsigned n, int flags, struct timespec *t)
{
	ONR_REAL_READY();
	if (!stack_fd(fd))
		return real_recvmmsg(fd, v, n, flags, t);
	return mmsg_each(fd, v, n, flags, true);
}

/* ---- send ----------------------------------------------------------------------------- */

struct send_arg {
	const void *buf;
	size_t len;
	int flags;
	const struct sock_addr *to;
};

static long op_send(struct stack *s, const struct onr_fd *e, void *arg)
{
	struct send_arg *sa = arg;

	return sock_send(s, e->id, sa->buf, sa->len, sa->flags & (MSG_MORE | MSG_OOB), sa->to);
}

/* EPIPE raises SIGPIPE, as the kernel does for a stream socket, unless MSG_NOSIGNAL. */
static ssize_t send_result(const struct onr_fd *e, ssize_t rc, int flags)
{
	if (rc == -EPIPE && e->type == SOCK_T_TCP && !(flags & MSG_NOSIGNAL))
		raise(SIGPIPE);
	return rc;
}

static ssize_t send_flat(struct onr_fd *e, const void *buf, size_t len, int flags,
			 const struct sock_addr *to)
{
	bool nonblock = (e->flags & ONR_FDF_NONBLOCK) || (flags & MSG_DONTWAIT);
	struct send_arg sa = {buf, len, flags, to};
	size_t sent = 0;
	long rc;

	if (e->type == SOCK_T_UDP && (flags & MSG_OOB))
		return -EOPNOTSUPP; /* no urgent data in a datagram (Linux's udp_sendmsg) */
	if (e->type == SOCK_T_UDP)
		return onr_blocking(e, nonblock, SOCK_EV_OUT, e->sndtimeo_ns, op_send, &sa);
	do {
		sa.buf = (const char *)buf + sent;
		sa.len = len - sent;
		rc = onr_blocking(e, nonblock, SOCK_EV_OUT, e->sndtimeo_ns, op_send, &sa);
		if (rc < 0)
			return sent ? (ssize_t)sent : send_result(e, rc, flags);
		sent += (size_t)rc;
	} while (sent < len && !nonblock);
	return (ssize_t)sent;
}

static ssize_t send_iov(struct onr_fd *e, const struct iovec *iov, int n, int flags,
			const struct sock_addr *to)
{
	size_t total;

	if (n < 0 || n > IOV_MAX)
		return -EINVAL;
	total = iov_total(iov, n);
	if (n == 1 || n == 0)
		return send_flat(e, n ? iov[0].iov_base : NULL, total, flags, to);
	if (e->type == SOCK_T_UDP) {
		char dgram[DGRAM_MAX];
		size_t off = 0;

		if (total > sizeof(dgram))
			return -EMSGSIZE;
		for (int i = 0; i < n; i++) {
			memcpy(dgram + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
		return send_flat(e, dgram, total, flags, to);
	}
	{
		size_t sent = 0;
		for (int i = 0; i < n; i++) {
			ssize_t rc;
			if (!iov[i].iov_len)
				continue;
			/* more follows: let the stack fill segments across the iovecs; the
			 * urgent byte (MSG_OOB) is the last of the last one */
			rc = send_flat(e, iov[i].iov_base, iov[i].iov_len,
				       i + 1 < n ? (flags | MSG_MORE) & ~MSG_OOB : flags, to);
			if (rc < 0)
				return sent ? (ssize_t)sent : rc;
			sent += (size_t)rc;
			if ((size_t)rc < iov[i].iov_len)
				break;
		}
		return (ssize_t)sent;
	}
}

/*
 * Where a send goes: the accelerated socket (0, with *to the UDP destination or NULL), the
 * kernel (1: an fd not ours, or a pending socket whose destination is not behind the
 * stack's link) or nowhere (-errno, a bad destination). An unbound UDP socket decides at
 * its first send, by the destination.
 */
static int send_target(int fd, const struct sockaddr *a, socklen_t len, struct onr_fd **e,
		       struct sock_addr *to, const struct sock_addr **top)
{
	struct onr_fd *p = onr_fd_get(fd);
	int rc;

	*top = NULL;
	if (!p)
		return 1;
	if (p->kind == ONR_FD_PENDING) {
		if (p->type != SOCK_T_UDP || !a || onr_sockaddr_in(a, len, to) < 0 ||
		    !onr_udp_decide(fd, p, to))
			return 1;
	}
	*e = p;
	if (!a || p->type != SOCK_T_UDP)
		return 0;
	rc = onr_sockaddr_in(a, len, to);
	if (rc == 0)
		*top = to;
	return rc;
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a,
		      socklen_t len)
{
	const struct sock_addr *top;
	struct sock_addr to;
	struct onr_fd *e;
	int rc;

	ONR_REAL_READY();
	rc = send_target(fd, a, len, &e, &to, &top);
	if (rc == 1)
		return real_sendto(fd, buf, n, flags, a, len);
	if (rc < 0)
		return onr_ret(rc);
	return onr_ret(send_flat(e, buf, n, flags, top));
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	return sendto(fd, buf, n, flags, NULL, 0);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	ONR_REAL_READY();
	if (!stack_fd(fd))
		return real_write(fd, buf, n);
	return sendto(fd, buf, n, 0, NULL, 0);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	struct onr_fd *e = stack_fd(fd);

	ONR_REAL_READY();
	if (!e)
		return real_writev(fd, iov, n);
	return onr_ret(send_iov(e, iov, n, 0, NULL));
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	const struct sock_addr *top;
	struct sock_addr to;
	struct onr_fd *e;
	int rc;

	ONR_REAL_READY();
	if (!m)
		return onr_fd_get(fd) ? onr_ret(-EFAULT) : real_sendmsg(fd, m, flags);
	rc = send_target(fd, m->msg_name, m->msg_namelen, &e, &to, &top);
	if (rc == 1)
		return real_sendmsg(fd, m, flags);
	if (rc < 0)
		return onr_ret(rc);
	return onr_ret(send_iov(e, m->msg_iov, (int)m->msg_iovlen, flags, top));
}

EXPORT int sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
	ONR_REAL_READY();
	/* a pending UDP socket too: its first sendmsg decides */
	if (!onr_fd_get(fd))
		return real_sendmmsg(fd, v, n, flags);
	return mmsg_each(fd, v, n, flags, false);
}

/*
 * sendfile to an accelerated socket: the file is read in 64 KiB pieces and sent. It returns
 * what was sent; the offset (or the file position) advances by exactly that much.
 */
static ssize_t sendfile_any(bool is64, int out, int in, off_t *off, size_t n)
{
	struct onr_fd *e = stack_fd(out);
	char buf[65536];
	size_t done = 0;

	ONR_REAL_READY();
	if (!e) {
		if (is64 && real_sendfile64)
			return real_sendfile64(out, in, off, n);
		return real_sendfile(out, in, off, n);
	}
	while (done < n) {
		size_t want = n - done < sizeof(buf) ? n - done : sizeof(buf);
		ssize_t r = off ? pread(in, buf, want, *off + (off_t)done) : real_read(in, buf, want);
		ssize_t w;

		if (r <= 0) {
			if (r < 0 && !done)
				return -1;
			break;
		}
		w = send_flat(e, buf, (size_t)r, 0, NULL);
		if (w < 0) {
			if (!off)
				lseek(in, -r, SEEK_CUR);
			if (!done)
				return onr_ret(w);
			break;
		}
		done += (size_t)w;
		if (w < r) {
			if (!off)
				lseek(in, (off_t)(w - r), SEEK_CUR);
			break;
		}
	}
	if (off)
		*off += (off_t)done;
	return (ssize_t)done;
}

EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
	return sendfile_any(false, out, in, off, n);
}

EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n)
{
	return sendfile_any(true, out, in, off, n);
}
