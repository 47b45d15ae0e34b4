/*
 * shim/intercept/socket.c — the socket calls (design §8): creation, the decision to
 * accelerate at bind/connect, listen/accept, names, options, and the fd calls that must
 * keep the fd table right (close, dup*, fcntl, ioctl, close_range).
 *
 * socket() makes the kernel socket as always and, for AF_INET TCP/UDP, remembers the fd as
 * pending. bind to the stack's address or INADDR_ANY, or connect along a route through the
 * stack's link, accelerates it: a stack socket is made and given the options set so far
 * (they went to the kernel socket at once, so a socket left to the kernel has them too).
 * Anything else — loopback, another interface, an option the stack lacks — forgets the
 * entry and the kernel socket carries on alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cplane.h"
#include "intercept.h"
#include "sockcall.h"

#define EXPORT __attribute__((visibility("default")))

/* ---- helpers shared with io.c ----------------------------------------------------------- */

int onr_sockaddr_in(const struct sockaddr *a, socklen_t len, struct sock_addr *out)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)a;

	if (!a || len < (socklen_t)sizeof(*sin))
		return -EINVAL;
	if (sin->sin_family != AF_INET)
		return -EAFNOSUPPORT;
	out->addr_be32 = sin->sin_addr.s_addr;
	out->port_be16 = sin->sin_port;
	return 0;
}

void onr_sockaddr_out(const struct sock_addr *in, struct sockaddr *a, socklen_t *len)
{
	struct sockaddr_in sin;

	if (!a || !len)
		return;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = in->addr_be32;
	sin.sin_port = in->port_be16;
	memcpy(a, &sin, *len < sizeof(sin) ? *len : sizeof(sin));
	*len = sizeof(sin);
}

/*
 * Run op under the lock until it stops saying -EAGAIN, as a blocking call does: poll the
 * stack once when it would block, spin EF_POLL_USEC, then sleep on the socket (waiting for
 * `events`) until timeout_ns (0: none). A non-blocking caller gets -EAGAIN at once.
 */
long onr_blocking(const struct onr_fd *e, bool nonblock, unsigned events, int64_t timeout_ns,
		  long (*op)(struct stack *s, const struct onr_fd *e, void *arg), void *arg)
{
	struct stack *s = &onr_stack_if_ready()->stack;
	int64_t deadline = timeout_ns > 0 ? onr_now_ns() + timeout_ns : -1;
	int64_t spin_end = 0;
	/* a handler that ran while this call spun or held the lock interrupts it as one during
	 * the sleep would: any handler with a timeout, one without SA_RESTART otherwise */
	uint64_t (*sigs)(void) = timeout_ns > 0 ? onr_signal_count : onr_signal_interrupts;
	uint64_t sigs0 = sigs();
	long rc;

	if (onr_lock() != 0)
		return -EIO;
	for (;;) {
		rc = op(s, e, arg);
		if (rc != -EAGAIN)
			break;
		stack_rt_poll(onr_stack_if_ready());
		rc = op(s, e, arg);
		if (rc != -EAGAIN || nonblock)
			break;
		if (sigs() != sigs0) {
			rc = -EINTR;
			break;
		}
		if (!spin_end)
			spin_end = onr_now_ns() + onr_spin_ns();
		if (onr_now_ns() < spin_end) {
			/* let the helper and other threads at the stack, and give way to any
			 * thread runnable on this CPU (where cores are few, often the peer or
			 * the softirq work this call waits for) */
			onr_unlock();
			sched_yield();
			if (onr_lock() != 0)
				return -EIO;
			continue;
		}
		{
			int64_t left = deadline < 0 ? -1 : deadline - onr_now_ns();
			int w;

			if (deadline >= 0 && left <= 0) {
				rc = -EAGAIN; /* SO_RCVTIMEO/SO_SNDTIMEO ran out: EAGAIN, as Linux */
				break;
			}

			w = sock_wait(s, e->id, events, left, onr_lock_ops());
			if (w < 0 && w != -EINTR)
				return w; /* the lock is lost */
			if (w == -EINTR) {
				rc = -EINTR;
				break;
			}
		}
	}
	onr_unlock();
	return rc;
}

/* ---- the decision --------------------------------------------------------------------- */

/* Whether traffic to dst leaves through the stack's link. */
static bool route_via_stack(struct stack_rt *rt, uint32_t dst_be32)
{
	const struct stack *s = &rt->stack;
	struct cplane_route r;
	uint32_t h = ntohl(dst_be32);

	if (!dst_be32 || (h >> 24) == 127 || h >= 0xe0000000u || dst_be32 == s->addr_be32)
		return false;
	if (((dst_be32 ^ s->addr_be32) & s->netmask_be32) == 0)
		return true;
	return cplane_route_lookup(stack_rt_cplane(rt), dst_be32, &r) == 0 && r.ifindex == rt->ifindex;
}

/* The entry goes: the kernel socket is the application's socket from now on. */
static void to_kernel(int fd, const char *why)
{
	onr_log(4, "fd %d stays on the kernel: %s", fd, why);
	onr_fd_clear(fd);
}

/*
 * Make the stack socket of a pending entry and give it the options set so far. Lock held.
 * Returns 0, -ENOPROTOOPT when an option is one the stack lacks (the socket stays with the
 * kernel), or -errno.
 */
static int accelerate(int fd, struct onr_fd *e)
{
	struct stack *s = &onr_stack_if_ready()->stack;
	int id = sock_open(s, e->type), rc = 0;
	int fl;

	if (id < 0)
		return id;
	for (unsigned i = 0; i < e->nopts && rc == 0; i++)
		rc = sock_setopt(s, (uint32_t)id, e->opts[i].level, e->opts[i].name,
				 e->opts[i].value);
	if (rc == 0 && e->cc)
		rc = sock_set_congestion(s, (uint32_t)id, e->cc == 1 ? "cubic" : "reno");
	if (rc == 0 && e->linger_on)
		rc = sock_set_linger(s, (uint32_t)id, e->linger_on - 1, e->linger_s);
	if (rc < 0) {
		sock_close(s, (uint32_t)id);
		return rc;
	}
	/* the kernel socket never blocks: waits happen here */
	fl = real_fcntl(fd, F_GETFL, 0);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		real_fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	sock_get(s, (uint32_t)id)->refs = 1;
	fl = real_fcntl(fd, F_GETOWN); /* an F_SETOWN made before the move */
	sock_get(s, (uint32_t)id)->owner = fl == -1 ? 0 : fl;
	e->id = (uint32_t)id;
	e->kind = ONR_FD_STACK;
	return 0;
}

bool onr_udp_decide(int fd, struct onr_fd *e, const struct sock_addr *to)
{
	struct stack_rt *rt = onr_stack_if_ready();
	int rc;

	if (!rt || !route_via_stack(rt, to->addr_be32)) {
		to_kernel(fd, "destination not behind the stack's link");
		return false;
	}
	if (onr_lock() != 0)
		return false;
	rc = accelerate(fd, e);
	onr_unlock();
	if (rc < 0) {
		to_kernel(fd, "the stack could not take it");
		return false;
	}
	return true;
}

/* ---- socket, bind, listen, connect, accept -------------------------------------------- */

EXPORT int socket(int domain, int type, int protocol)
{
	int fd, base = type & 0xf;
	struct onr_fd *e;

	ONR_REAL_READY();
	fd = real_socket(domain, type, protocol);
	if (fd < 0 || domain != AF_INET)
		return fd;
	if (!(base == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP)) &&
	    !(base == SOCK_DGRAM && (protocol == 0 || protocol == IPPROTO_UDP)))
		return fd;
	if (!onr_stack() || !(e = onr_fd_slot(fd)))
		return fd;
	memset(e, 0, sizeof(*e));
	e->type = base == SOCK_STREAM ? SOCK_T_TCP : SOCK_T_UDP;
	e->flags = (type & SOCK_NONBLOCK) ? ONR_FDF_NONBLOCK : 0;
	__atomic_store_n(&e->kind, ONR_FD_PENDING, __ATOMIC_RELEASE);
	return fd;
}

EXPORT int bind(int fd, const struct sockaddr *a, socklen_t len)
{
	struct onr_fd *e = onr_fd_get(fd);
	struct stack_rt *rt;
	struct sock_addr sa;
	bool kernel_bound;
	int rc;

	ONR_REAL_READY();
	if (!e)
		return real_bind(fd, a, len);
	if (e->kind == ONR_FD_STACK)
		return onr_ret(-EINVAL); /* bound already, as Linux says */
	rt = onr_stack_if_ready();
	if (onr_sockaddr_in(a, len, &sa) < 0 || !rt ||
	    (sa.addr_be32 != INADDR_ANY && sa.addr_be32 != rt->stack.addr_be32)) {
		to_kernel(fd, "bound to an address the stack does not own");
		return real_bind(fd, a, len);
	}
	/*
	 * The kernel socket takes the port too: it reserves it against kernel sockets, picks
	 * it when 0 is asked, and (INADDR_ANY) is what local clients reach. On tap the
	 * stack's own address is not the kernel's: then the kernel socket stays unbound.
	 */
	rc = real_bind(fd, a, len);
	if (rc < 0 && errno != EADDRNOTAVAIL)
		return rc;
	kernel_bound = rc == 0;
	if (rc == 0 && sa.port_be16 == 0) {
		struct sockaddr_in kn;
		socklen_t kl = sizeof(kn);
		if (real_getsockname(fd, (struct sockaddr *)&kn, &kl) == 0)
			sa.port_be16 = kn.sin_port;
	}
	if (onr_lock() != 0)
		return onr_ret(-EIO);
	rc = accelerate(fd, e);
	if (rc == -ENOPROTOOPT) {
		onr_unlock();
		to_kernel(fd, "an option the stack lacks");
		/* the socket is the kernel's now: its bind's answer is the answer (on tap the
		 * stack's address is not the kernel's, so EADDRNOTAVAIL) */
		return kernel_bound ? 0 : (int)onr_ret(-EADDRNOTAVAIL);
	}
	if (rc == 0) {
		rc = sock_bind(&rt->stack, e->id, &sa);
		if (rc < 0) {
			onr_sock_unref(e->id);
			e->kind = ONR_FD_PENDING;
		}
	}
	onr_unlock();
	return (int)onr_ret(rc);
}

EXPORT int listen(int fd, int backlog)
{
	struct onr_fd *e = onr_fd_get(fd);
	struct sock_addr sa;
	bool any;
	int rc;

	ONR_REAL_READY();
	if (!e || e->kind != ONR_FD_STACK) {
		if (e)
			to_kernel(fd, "listen before bind"); /* the kernel binds it to any */
		return real_listen(fd, backlog);
	}
	if (onr_lock() != 0)
		return (int)onr_ret(-EIO);
	rc = sock_listen(&onr_stack_if_ready()->stack, e->id, backlog);
	any = sock_getname(&onr_stack_if_ready()->stack, e->id, &sa) == 0 && !sa.addr_be32;
	onr_unlock();
	/* Bound to any address: the kernel socket listens too, for local clients (loopback
	 * and the host's other addresses never reach the stack). */
	if (rc == 0 && any && real_listen(fd, backlog) == 0)
		e->flags |= ONR_FDF_KLISTEN;
	return (int)onr_ret(rc);
}

static long op_connect(struct stack *s, const struct onr_fd *e, void *arg)
{
	int rc = sock_connect(s, e->id, arg);

	if (rc == -EINPROGRESS || rc == -EALREADY)
		return -EAGAIN;
	if (rc == -EISCONN)
		return 0;
	return rc;
}

EXPORT int connect(int fd, const struct sockaddr *a, socklen_t len)
{
	struct onr_fd *e = onr_fd_get(fd);
	struct stack_rt *rt;
	struct sock_addr sa;
	long rc;

	ONR_REAL_READY();
	if (!e)
		return real_connect(fd, a, len);
	rt = onr_stack_if_ready();
	rc = onr_sockaddr_in(a, len, &sa);
	if (e->kind == ONR_FD_PENDING) {
		if (rc < 0 || !rt || !route_via_stack(rt, sa.addr_be32)) {
			to_kernel(fd, "destination not behind the stack's link");
			return real_connect(fd, a, len);
		}
		if (onr_lock() != 0)
			return (int)onr_ret(-EIO);
		rc = accelerate(fd, e);
		onr_unlock();
		if (rc == -ENOPROTOOPT) {
			to_kernel(fd, "an option the stack lacks");
			return real_connect(fd, a, len);
		}
		if (rc < 0)
			return (int)onr_ret(rc);
	} else if (rc < 0) {
		if (a && len >= sizeof(sa_family_t) && a->sa_family == AF_UNSPEC &&
		    e->type == SOCK_T_UDP)
			sa = (struct sock_addr){0, 0}; /* dissolve the association */
		else
			return (int)onr_ret(rc);
	}
	if (e->type == SOCK_T_UDP) {
		if (onr_lock() != 0)
			return (int)onr_ret(-EIO);
		rc = sock_connect(&rt->stack, e->id, &sa);
		onr_unlock();
		return (int)onr_ret(rc);
	}
	if (onr_lock() != 0)
		return (int)onr_ret(-EIO);
	rc = sock_connect(&rt->stack, e->id, &sa);
	onr_unlock();
	if (rc != -EINPROGRESS || (e->flags & ONR_FDF_NONBLOCK))
		return (int)onr_ret(rc);
	rc = onr_blocking(e, false, SOCK_EV_OUT, e->sndtimeo_ns, op_connect, &sa);
	if (rc == -EAGAIN)
		rc = -EINPROGRESS; /* SO_SNDTIMEO ran out: the handshake goes on, as on Linux */
	if (rc < 0 && rc != -EINTR && rc != -EINPROGRESS) {
		int err = 0;
		if (onr_lock() == 0) {
			sock_getopt(&rt->stack, e->id, SOL_SOCKET, SO_ERROR, &err);
			onr_unlock();
		}
		if (err)
			rc = -err;
	}
	return (int)onr_ret(rc);
}

struct accept_arg {
	struct sock_addr peer;
	int id;
};

static long op_accept(struct stack *s, const struct onr_fd *e, void *arg)
{
	struct accept_arg *aa = arg;
	int id = sock_accept(s, e->id, &aa->peer);

	if (id < 0)
		return id;
	aa->id = id;
	return 0;
}

/* A new fd for an accepted stack connection: a kernel socket holds the number. */
static int accept_stack(const struct onr_fd *l, struct accept_arg *aa, struct sockaddr *a,
			socklen_t *len, int flags)
{
	struct stack *s = &onr_stack_if_ready()->stack;
	int nfd = real_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | (flags & SOCK_CLOEXEC), 0);
	struct onr_fd *n;

	if (onr_lock() != 0) {
		if (nfd >= 0)
			real_close(nfd);
		return (int)onr_ret(-EIO);
	}
	if (nfd < 0 || !(n = onr_fd_slot(nfd))) {
		int err = nfd < 0 ? errno : EMFILE;
		sock_close(s, (uint32_t)aa->id); /* Linux too loses the connection (RST) */
		onr_unlock();
		if (nfd >= 0)
			real_close(nfd);
		return (int)onr_ret(-err);
	}
	memset(n, 0, sizeof(*n));
	n->type = SOCK_T_TCP;
	n->id = (uint32_t)aa->id;
	n->flags = (flags & SOCK_NONBLOCK) ? ONR_FDF_NONBLOCK : 0;
	n->rcvtimeo_ns = l->rcvtimeo_ns;
	n->sndtimeo_ns = l->sndtimeo_ns;
	sock_get(s, n->id)->refs = 1;
	__atomic_store_n(&n->kind, ONR_FD_STACK, __ATOMIC_RELEASE);
	onr_unlock();
	onr_sockaddr_out(&aa->peer, a, len);
	return nfd;
}

EXPORT int accept4(int fd, struct sockaddr *a, socklen_t *len, int flags)
{
	struct onr_fd *e = onr_fd_get(fd);
	struct accept_arg aa;
	long rc;

	ONR_REAL_READY();
	if (!e || e->kind != ONR_FD_STACK)
		return real_accept4(fd, a, len, flags);
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return (int)onr_ret(-EINVAL);
	if (e->type != SOCK_T_TCP)
		return (int)onr_ret(-EOPNOTSUPP);
	for (;;) {
		bool dual = e->flags & ONR_FDF_KLISTEN;
		rc = onr_blocking(e, dual || (e->flags & ONR_FDF_NONBLOCK), SOCK_EV_IN,
				  e->rcvtimeo_ns, op_accept, &aa);
		if (rc == 0)
			return accept_stack(e, &aa, a, len, flags);
		if (rc != -EAGAIN || !dual)
			return (int)onr_ret(rc);
		/* the kernel listener: local clients */
		rc = real_accept4(fd, a, len, flags);
		if (rc >= 0 || errno != EAGAIN || (e->flags & ONR_FDF_NONBLOCK))
			return (int)rc;
		{
			struct pollfd p = {.fd = fd, .events = POLLIN};
			int ms = e->rcvtimeo_ns ? (int)(e->rcvtimeo_ns / 1000000) : -1;
			uint64_t intr = onr_signal_interrupts();
			int n = poll(&p, 1, ms); /* ours: the stack and the kernel listener */

			/* poll is never restarted, accept is: under SA_RESTART (and without
			 * SO_RCVTIMEO, as Linux) the wait goes on */
			if (n < 0 && errno == EINTR && !e->rcvtimeo_ns &&
			    onr_signal_interrupts() == intr)
				continue;
			if (n < 0)
				return -1;
			if (n == 0)
				return (int)onr_ret(-EAGAIN);
		}
	}
}

EXPORT int accept(int fd, struct sockaddr *a, socklen_t *len)
{
	return accept4(fd, a, len, 0);
}

EXPORT int shutdown(int fd, int how)
{
	struct onr_fd *e = onr_fd_get(fd);
	int rc;

	ONR_REAL_READY();
	if (!e || e->kind != ONR_FD_STACK)
		return real_shutdown(fd, how);
	if (onr_lock() != 0)
		return (int)onr_ret(-EIO);
	rc = sock_shutdown(&onr_stack_if_ready()->stack, e->id, how);
	onr_unlock();
	return (int)onr_ret(rc);
}

/* ---- names and options ------------------------------------------------------------------ */

static int names(int fd, struct sockaddr *a, socklen_t *len, bool peer)
{
	struct onr_fd *e = onr_fd_get(fd);
	struct stack *s;
	struct sock_addr sa;
	int rc;

	ONR_REAL_READY();
	if (!e || e->kind != ONR_FD_STACK)
		return peer ? real_getpeername(fd, a, len) : real_getsockname(fd, a, len);
	if (!a || !len)
		return (int)onr_ret(-EFAULT);
	s = &onr_stack_if_ready()->stack;
	if (onr_lock() != 0)
		return (int)onr_ret(-EIO);
	rc = peer ? sock_getpeer(s, e->id, &sa) : sock_getname(s, e->id, &sa);
	onr_unlock();
	if (rc == 0)
		onr_sockaddr_out(&sa, a, len);
	return (int)onr_ret(rc);
}

EXPORT int getsockname(int fd, struct sockaddr *a, socklen_t *len)
{
	return names(fd, a, len, false);
}

EXPORT int getpeername(int fd, struct sockaddr *a, socklen_t *len)
{
	return names(fd, a, len, true);
}

static int64_t timeval_ns(const void *val, socklen_t len)
{
	struct timeval tv;

	if (len < sizeof(tv))
		return -1;
	memcpy(&tv, val, sizeof(tv));
	return (int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000;
}

/* Options the fd layer keeps itself (timeouts) or the stack takes in another shape. Returns
 * 1 when handled (rc set), 0 when it is an integer option for the stack. */
static int setopt_special(struct onr_fd *e, struct stack *s, int level, int name,
			  const void *val, socklen_t len, int *rc)
{
	*rc = 0;
	if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
		int64_t ns = timeval_ns(val, len);
		if (ns < 0)
			*rc = -EINVAL;
		else if (name == SO_RCVTIMEO)
			e->rcvtimeo_ns = ns;
		else
			e->sndtimeo_ns = ns;
		return 1;
	}
	if (level == SOL_SOCKET && name == SO_LINGER) {
		struct linger l;
		if (len < sizeof(l)) {
			*rc = -EINVAL;
			return 1;
		}
		memcpy(&l, val, sizeof(l));
		if (e->kind == ONR_FD_STACK)
			*rc = sock_set_linger(s, e->id, l.l_onoff, l.l_linger);
		else {
			e->linger_on = (uint8_t)(1 + !!l.l_onoff);
			e->linger_s = (uint16_t)(l.l_linger < 0 ? 0 : l.l_linger);
		}
		return 1;
	}
	if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
		char cc[16] = "";
		memcpy(cc, val, len < sizeof(cc) - 1 ? len : sizeof(cc) - 1);
		if (e->kind == ONR_FD_STACK)
			*rc = sock_set_congestion(s, e->id, cc);
		else if (strcmp(cc, "cubic") == 0)
			e->cc = 1;
		else if (strcmp(cc, "reno") == 0 || strcmp(cc, "newreno") == 0)
			e->cc = 2;
		else
			*rc = -ENOPROTOOPT;
		return 1;
	}
	return 0;
}

EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct onr_fd *e = onr_fd_get(fd);
	struct stack *s;
	int rc, v;

	ONR_REAL_READY();
	if (!e)
		return real_setsockopt(fd, level, name, val, len);
	if (e->kind == ONR_FD_PENDING) {
		/* the kernel socket first: it is the fallback, and it checks the arguments */
		if (real_setsockopt(fd, level, name, val, len) < 0)
			return -1;
		s = NULL;
		if (setopt_special(e, s, level, name, val, len, &rc)) {
			if (rc == -ENOPROTOOPT)
				to_kernel(fd, "an option the stack lacks");
			return 0;
		}
		if (len < sizeof(int) || e->nopts == ONR_FD_OPTS) {
			to_kernel(fd, "an option the stack lacks");
			return 0;
		}
		memcpy(&v, val, sizeof(v));
		e->opts[e->nopts].level = (int16_t)level;
		e->opts[e->nopts].name = (int16_t)name;
		e->opts[e->nopts].value = v;
		e->nopts++;
		return 0;
	}
	s = &onr_stack_if_ready()->stack;
	if (onr_lock() != 0)
		return (int)onr_ret(-EIO);
	if (!setopt_special(e, s, level, name, val, len, &rc)) {
		if (!val || len < sizeof(int)) {
			rc = -EINVAL;
		} else {
			memcpy(&v, val, sizeof(v));
			rc = sock_setopt(s, e->id, level, name, v);
		}
	}
	onr_unlock();
	if (rc == -ENOPROTOOPT) {
		/* the stack has no such option: the kernel socket checks and keeps it */
		onr_log(2, "fd %d: option %d/%d not supported by the stack; kept by the kernel socket",
			fd, level, name);
		return real_setsockopt(fd, level, name, val, len);
	}
	return (int)onr_ret(rc);
}

EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct onr_fd *e = onr_fd_get(fd);
	struct stack *s;
	int rc, v = 0;

	ONR_REAL_READY();
	if (!e || e->kind != ONR_FD_STACK)
		return real_getsockopt(fd, level, name, val, len);
	if (!val || !len)
		return (int)onr_ret(-EFAULT);
	s = &onr_stack_if_ready()->stack;
	if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
		int64_t ns = name == SO_RCVTIMEO ? e->rcvtimeo_ns : e->sndtimeo_ns;
		struct timeval tv = {.tv_sec = ns / 1000000000, .tv_usec = ns % 1000000000 / 1000};
		memcpy(val, &tv, *len < sizeof(tv) ? *len : sizeof(tv));
		*len = *len < sizeof(tv) ? *len : sizeof(tv);
		return 0;
	}
	if (onr_lock() != 0)
		return (int)onr_ret(-EIO);
	if (level == SOL_SOCKET && name == SO_LINGER) {
		struct linger l;
		int on = 0, secs = 0;
		rc = sock_get_linger(s, e->id, &on, &secs);
		l.l_onoff = on;
		l.l_linger = secs;
		onr_unlock();
		if (rc == 0) {
			memcpy(val, &l, *len < sizeof(l) ? *len : sizeof(l));
			*len = *len < sizeof(l) ? *len : sizeof(l);
		}
		return (int)onr_ret(rc);
	}
	if (level == IPPROTO_TCP && name == TCP_INFO && e->type == SOCK_T_TCP) {
		/* the stack's connection, not the idle kernel socket at the fd; Linux copies
		 * min(optlen, its struct's size) and says how much */
		rc = (int)*len < 0 ? -EINVAL : sock_tcp_info(s, e->id, val, *len);
		onr_unlock();
		if (rc >= 0) {
			*len = (socklen_t)rc;
			rc = 0;
		}
		return (int)onr_ret(rc);
	}
	if (level == IPPROTO_TCP && name == TCP_CONGESTION) {
		char cc[16];
		rc = sock_get_congestion(s, e->id, cc, sizeof(cc));
		onr_unlock();
		if (rc == 0) {
			size_t n = strlen(cc) + 1;
			memcpy(val, cc, *len < n ? *len : n);
			*len = (socklen_t)(*len < n ? *len : n);
		}
		return (int)onr_ret(rc);
	}
	rc = sock_getopt(s, e->id, level, name, &v);
	onr_unlock();
	if (rc == -ENOPROTOOPT)
		return real_getsockopt(fd, level, name, val, len);
	if (rc == 0) {
		memcpy(val, &v, *len < sizeof(v) ? *len : sizeof(v));
		*len = *len < sizeof(v) ? *len : sizeof(v);
	}
	return (int)onr_ret(rc);
}

/* ---- close, dup, fcntl, ioctl ------------------------------------------------------------ */

/* fd stops naming its stack socket (the fd table lock held by the caller). */
static void forget_stack_fd(int fd, struct onr_fd *e)
{
	onr_epoll_forget(fd);
	if (onr_lock() == 0) {
		onr_sock_unref(e->id);
		onr_fd_clear(fd);
		onr_unlock();
	} else {
		onr_fd_clear(fd);
	}
}

EXPORT int close(int fd)
{
	struct onr_fd *e = onr_fd_get(fd);

	ONR_REAL_READY();
	if (!e) {
		if (__builtin_expect(onr_fd_internal(fd), 0) && !onr_fd_internal_close(fd))
			return (int)onr_ret(-EBADF); /* the stack's own: not the program's to close */
		onr_epoll_closed(fd);
		return real_close(fd);
	}
	onr_fds_lock();
	e = onr_fd_get(fd);
	if (e && e->kind == ONR_FD_STACK) {
		forget_stack_fd(fd, e);
	} else {
		onr_epoll_forget(fd); /* a pending socket may sit in an epoll set too */
		onr_fd_clear(fd);
	}
	onr_fds_unlock();
	return real_close(fd);
}

/* fd2 is a new name of fd's socket (after the kernel's dup). Table lock held. */
static void dup_entry(int fd, int fd2)
{
	struct onr_fd *e = onr_fd_get(fd), *n;

	if (!e || fd2 < 0 || fd2 == fd || !(n = onr_fd_slot(fd2)))
		return;
	if (e->kind == ONR_FD_STACK) {
		if (onr_lock() != 0)
			return;
		*n = *e;
		sock_get(&onr_stack_if_ready()->stack, e->id)->refs++;
		onr_unlock();
	} else {
		*n = *e;
	}
}

/* fd2 is about to be replaced by dup2/dup3: what it named goes. Table lock held. */
static void dup_target_closes(int fd2)
{
	struct onr_fd *e = onr_fd_get(fd2);

	if (!e) {
		onr_epoll_closed(fd2);
	} else if (e->kind == ONR_FD_STACK) {
		forget_stack_fd(fd2, e);
	} else {
		onr_epoll_forget(fd2);
		onr_fd_clear(fd2);
	}
}

EXPORT int dup(int fd)
{
	int fd2;

	ONR_REAL_READY();
	if (!onr_fd_get(fd))
		return onr_epoll_dup(fd, real_dup(fd));
	onr_fds_lock();
	fd2 = real_dup(fd);
	dup_entry(fd, fd2);
	onr_fds_unlock();
	return fd2;
}

static int dup23(int fd, int fd2, int flags, bool three)
{
	int rc;

	ONR_REAL_READY();
	if (fd != fd2 && onr_fd_internal(fd2)) {
		onr_log(2, "dup%d onto fd %d refused: the stack uses it", three ? 3 : 2, fd2);
		return (int)onr_ret(-EBUSY);
	}
	if (!onr_fd_get(fd) && !onr_fd_get(fd2)) {
		if (fd != fd2)
			onr_epoll_closed(fd2);
		return onr_epoll_dup(fd, three ? real_dup3(fd, fd2, flags) : real_dup2(fd, fd2));
	}
	onr_fds_lock();
	if (fd == fd2 || fcntl(fd, F_GETFD) < 0) {
		rc = three ? real_dup3(fd, fd2, flags) : real_dup2(fd, fd2);
		onr_fds_unlock();
		return rc;
	}
	dup_target_closes(fd2);
	rc = three ? real_dup3(fd, fd2, flags) : real_dup2(fd, fd2);
	if (rc >= 0)
		dup_entry(fd, fd2);
	onr_fds_unlock();
	return onr_fd_get(fd) ? rc : onr_epoll_dup(fd, rc);
}

EXPORT int dup2(int fd, int fd2)
{
	return dup23(fd, fd2, 0, false);
}

EXPORT int dup3(int fd, int fd2, int flags)
{
	return dup23(fd, fd2, flags, true);
}

/* close_range over [lo, hi] with the stack's own fds left open: the pieces between them. */
static int close_range_around(unsigned lo, unsigned hi, int flags)
{
	unsigned from = lo;

	while (from <= hi) {
		unsigned to = from;

		/* the next of the stack's fds at or after `from`, or hi + 1 */
		while (to <= hi && !onr_fd_internal((int)to) && onr_range_internal(to, hi))
			to++;
		if (!onr_range_internal(from, hi))
			return real_close_range(from, hi, flags);
		if (to > from && real_close_range(from, to - 1, flags) < 0)
			return -1;
		if (to == hi)
			break;
		from = to + 1;
	}
	return 0;
}

EXPORT int close_range(unsigned lo, unsigned hi, int flags)
{
	ONR_REAL_READY();
	if (lo > hi || !real_close_range)
		return real_close_range ? real_close_range(lo, hi, flags)
					: (int)onr_ret(-ENOSYS);
	if (!(flags & CLOSE_RANGE_CLOEXEC)) {
		int top = onr_fd_limit();
		onr_fds_lock();
		for (unsigned fd = lo; fd <= hi && fd < (unsigned)top; fd++) {
			struct onr_fd *e = onr_fd_get((int)fd);
			if (!e) {
				onr_epoll_closed((int)fd);
			} else if (e->kind == ONR_FD_STACK) {
				forget_stack_fd((int)fd, e);
			} else {
				onr_epoll_forget((int)fd);
				onr_fd_clear((int)fd);
			}
		}
		onr_fds_unlock();
	}
	if (!(flags & CLOSE_RANGE_CLOEXEC) && onr_range_internal(lo, hi))
		return close_range_around(lo, hi, flags);
	return real_close_range(lo, hi, flags);
}

static int fcntl_any(bool is64, int fd, int cmd, long arg)
{
	struct onr_fd *e = onr_fd_get(fd);
	int (*f)(int, int, ...) = is64 && real_fcntl64 ? real_fcntl64 : real_fcntl;
	int rc;

	if (!e) {
		rc = f(fd, cmd, arg);
		return cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC ? onr_epoll_dup(fd, rc) : rc;
	}
	switch (cmd) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		onr_fds_lock();
		rc = f(fd, cmd, arg);
		dup_entry(fd, rc);
		onr_fds_unlock();
		return rc;
	case F_SETOWN:
		/* the kernel socket keeps it for F_GETOWN; the stack sends SIGURG to it */
		rc = f(fd, cmd, arg);
		if (rc == 0 && e->kind == ONR_FD_STACK && onr_lock() == 0) {
			sock_get(&onr_stack_if_ready()->stack, e->id)->owner = (int32_t)arg;
			onr_unlock();
		}
		return rc;
	case F_GETFL:
		rc = f(fd, cmd, arg);
		if (rc >= 0 && e->kind == ONR_FD_STACK)
			rc = (rc & ~O_NONBLOCK) | ((e->flags & ONR_FDF_NONBLOCK) ? O_NONBLOCK : 0);
		return rc;
	case F_SETFL:
		if (e->kind == ONR_FD_STACK) {
			rc = f(fd, cmd, arg | O_NONBLOCK);
		} else {
			rc = f(fd, cmd, arg);
		}
		if (rc == 0) {
			if (arg & O_NONBLOCK)
				e->flags |= ONR_FDF_NONBLOCK;
			else
				e->flags &= (uint16_t)~ONR_FDF_NONBLOCK;
		}
		return rc;
	default:
		return f(fd, cmd, arg);
	}
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	ONR_REAL_READY();
	return fcntl_any(false, fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	ONR_REAL_READY();
	return fcntl_any(true, fd, cmd, arg);
}

EXPORT int ioctl(int fd, unsigned long req, ...)
{
	struct onr_fd *e = onr_fd_get(fd);
	va_list ap;
	void *arg;
	int v = 0;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	ONR_REAL_READY();
	if (e && e->kind == ONR_FD_PENDING && req == FIONBIO && arg) {
		/* nginx sets its listeners non-blocking this way before binding them */
		int rc = real_ioctl(fd, req, arg);
		if (rc == 0 && *(int *)arg)
			e->flags |= ONR_FDF_NONBLOCK;
		else if (rc == 0)
			e->flags &= (uint16_t)~ONR_FDF_NONBLOCK;
		return rc;
	}
	if (!e || e->kind != ONR_FD_STACK)
		return real_ioctl(fd, req, arg);
	switch (req) {
	case FIONBIO:
		if (!arg)
			return (int)onr_ret(-EFAULT);
		if (*(int *)arg)
			e->flags |= ONR_FDF_NONBLOCK;
		else
			e->flags &= (uint16_t)~ONR_FDF_NONBLOCK;
		return 0;
	case FIONREAD: /* SIOCINQ */
	case SIOCOUTQ: {
		struct stack_sock *so;
		if (!arg)
			return (int)onr_ret(-EFAULT);
		if (onr_lock() != 0)
			return (int)onr_ret(-EIO);
		so = sock_get(&onr_stack_if_ready()->stack, e->id);
		if (so && req == FIONREAD)
			v = onr_sock_inq(&onr_stack_if_ready()->stack, e->id);
		else if (so && so->type == SOCK_T_TCP)
			v = (int)so->tcp.sndq_bytes;
		onr_unlock();
		if (!so)
			return (int)onr_ret(-EBADF);
		if (so->type == SOCK_T_TCP && so->state == TCPS_LISTEN)
			return (int)onr_ret(-EINVAL);
		*(int *)arg = v;
		return 0;
	}
	case SIOCATMARK: {
		int rc;
		/* UDP: the kernel socket answers as Linux does for a datagram socket */
		if (e->type != SOCK_T_TCP)
			return real_ioctl(fd, req, arg);
		if (!arg)
			return (int)onr_ret(-EFAULT);
		if (onr_lock() != 0)
			return (int)onr_ret(-EIO);
		rc = sock_at_mark(&onr_stack_if_ready()->stack, e->id);
		onr_unlock();
		if (rc < 0)
			return (int)onr_ret(rc);
		*(int *)arg = rc;
		return 0;
	}
	default:
		return real_ioctl(fd, req, arg);
	}
}
