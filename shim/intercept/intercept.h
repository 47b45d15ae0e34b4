/*
 * shim/intercept/intercept.h — what the files of the preload layer share (design §8).
 *
 * calls.def lists every interposed call once. real.c resolves the next definition of each
 * (dlsym RTLD_NEXT) into real_<name>; the exported wrappers live in socket.c (socket calls),
 * io.c (data calls), poll.c (poll, ppoll, select, pselect), epoll.c and proc.c (fork,
 * signals). A wrapper that meets an fd the library does not own calls real_<name> at once:
 * arguments, result and errno pass through untouched.
 *
 * Each accelerated socket keeps a kernel socket at its fd number (a true fd for fork, dup and
 * mixed poll, and the fallback). The process's view of its fds is the fd table (process
 * local, copied by fork); the sockets themselves live in the stack, which lives in shared
 * memory, so a forked child shares them.
 *
 * Locking: the stack lock (onr_lock/onr_unlock) guards the stack and every stack socket; the
 * fd table's entries are written under it too and read without it (an entry's kind is read
 * first). Never call an exported wrapper with the lock held.
 */
#ifndef ONRAMP_INTERCEPT_H
#define ONRAMP_INTERCEPT_H

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "runtime.h"
#include "sock.h"

/* ---- the real functions (real.c) --------------------------------------------------------- */

#define ONR_CALL(ret, name, params, args) extern ret(*real_##name) params;
#include "calls.def"
#undef ONR_CALL

/* The _FORTIFY_SOURCE entry points glibc declares only to fortified builds. */
ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *a, socklen_t *len);
int __poll_chk(struct pollfd *f, nfds_t n, int ms, size_t flen);
int __ppoll_chk(struct pollfd *f, nfds_t n, const struct timespec *t, const sigset_t *m,
		size_t flen);
int fcntl64(int fd, int cmd, ...);
ssize_t sendfile64(int out, int in, off_t *off, size_t n);

/* Resolve every real_<name> (idempotent; wrappers call it through ONR_REAL_READY). */
void onr_real_init(void);
extern bool onr_real_done;
#define ONR_REAL_READY()                                                                      \
	do {                                                                                  \
		if (__builtin_expect(!onr_real_done, 0))                                      \
			onr_real_init();                                                      \
	} while (0)

/* ---- the fd table (fdtab.c) ------------------------------------------------------------- */

enum onr_fd_kind {
	ONR_FD_NONE = 0, /* not ours: every call passes through */
	ONR_FD_PENDING,	 /* an AF_INET socket not yet bound or connected: the decision waits */
	ONR_FD_STACK,	 /* accelerated: served by stack socket `id` */
};

#define ONR_FDF_NONBLOCK 0x01 /* O_NONBLOCK as the application set it (the kernel socket of
			       * an accelerated fd is always non-blocking) */
#define ONR_FDF_KLISTEN	 0x02 /* a listener whose kernel socket listens too (INADDR_ANY):
			       * local clients reach it through the kernel */

#define ONR_FD_OPTS 12 /* integer options remembered while the decision waits */

struct onr_fd {
	uint8_t kind;	/* enum onr_fd_kind */
	uint8_t type;	/* SOCK_T_TCP or SOCK_T_UDP */
	uint16_t flags; /* ONR_FDF_* */
	uint32_t id;	/* the stack socket (ONR_FD_STACK) */
	int64_t rcvtimeo_ns, sndtimeo_ns; /* SO_RCVTIMEO, SO_SNDTIMEO; 0: none */
	/* Options set while pending: they went to the kernel socket at once, and are given to
	 * the stack socket when the decision accelerates. */
	uint8_t nopts;
	uint8_t cc;	   /* TCP_CONGESTION: 0 default, 1 cubic, 2 reno */
	uint8_t linger_on; /* SO_LINGER set: linger_on - 1 is l_onoff */
	uint16_t linger_s;
	struct {
		int16_t level, name;
		int32_t value;
	} opts[ONR_FD_OPTS];
};

/* The entry of fd, or NULL when fd is not ours (no lock needed: a plain load). */
struct onr_fd *onr_fd_get(int fd);
/* The entry of fd, made (zeroed) when needed; NULL when fd is out of the table's range. */
struct onr_fd *onr_fd_slot(int fd);
/* Forget fd (kind NONE). */
void onr_fd_clear(int fd);
/* Entries in use are below this (a scan bound). */
int onr_fd_limit(void);

/* ---- the process and its stack (proc.c) ------------------------------------------------- */

enum onr_proc_state { ONR_PROC_UNINIT, ONR_PROC_READY, ONR_PROC_DISABLED };

/* The stack this process accelerates with, started on first need (the first AF_INET
 * socket). NULL when acceleration is off: it could not start (the reason was logged once,
 * or the process exited when EF_NO_FAIL=0) or is disabled. */
struct stack_rt *onr_stack(void);
/* The stack, when it was started already (never starts it). */
struct stack_rt *onr_stack_if_ready(void);

/* The stack lock, with the helper thread started in this process (after a fork too).
 * Returns 0 or -errno. While held, signal handlers installed through sigaction/signal are
 * deferred until onr_unlock, so a handler that makes socket calls cannot deadlock. */
int onr_lock(void);
void onr_unlock(void);
/* lock_ops for sock_wait / pool waits (drop and retake the stack lock). */
const struct pkt_lock_ops *onr_lock_ops(void);

/* EF_POLL_USEC in ns: how long a blocking call spins polling the stack before sleeping. */
int64_t onr_spin_ns(void);
/* CLOCK_MONOTONIC in ns. */
int64_t onr_now_ns(void);

/*
 * Sleeping in poll/select/epoll over stack sockets. Under the lock, after finding nothing
 * ready: onr_poller_enter(); unlock; sleep in the kernel on your kernel fds plus
 * onr_wake_fd() and onr_link_fd() (both readable-to-wake; -1 when absent); lock;
 * onr_poller_leave(); recheck. A readiness change of any stack socket while pollers are
 * asleep makes the wake fd readable; the last poller to leave clears it.
 */
void onr_poller_enter(void);
void onr_poller_leave(void);
int onr_wake_fd(void);
int onr_link_fd(void);

/* Readiness of an accelerated fd as poll(2) reports it (POLLIN, POLLOUT, POLLERR, POLLHUP,
 * POLLRDHUP, POLLRDNORM, POLLWRNORM), under the lock. */
short onr_fd_revents(const struct onr_fd *e);
/* The socket's wake sequence (bumped on every readiness change), for edge-triggered epoll. */
uint32_t onr_fd_wake_seq(const struct onr_fd *e);

/* How many signal handlers (installed through sigaction/signal) this thread has run. */
uint64_t onr_signal_count(void);
/* How many of those were installed without SA_RESTART (a restartable call that saw only
 * SA_RESTART handlers run restarts, as the kernel restarts it). */
uint64_t onr_signal_interrupts(void);

/* Logging per EF_LOG: 1 errors and fallbacks, 2 warnings, 3 info, 4 debug. */
void onr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether fd is one the stack opened for itself (region, link, eventfds, netlink): close
 * answers EBADF, close_range steps around it, dup2/dup3 onto it fail with EBUSY. */
bool onr_fd_internal(int fd);
/* close() met one of those: true (and it is forgotten) when the stack's own code closes it
 * (this thread holds the stack lock), false when the program does. */
bool onr_fd_internal_close(int fd);
/* Whether any of those is in [lo, hi]. */
bool onr_range_internal(unsigned lo, unsigned hi);

/* Drop one fd's reference on its stack socket (lock held); the last one closes it. */
void onr_sock_unref(uint32_t id);
/* Held around fd table changes that must not interleave with fork's reference counting. */
void onr_fds_lock(void);
void onr_fds_unlock(void);

/* Called by close/dup2/dup3/close_range for an accelerated or pending fd about to go away:
 * this process's pending epoll members of fd go (epoll.c). An accelerated member stays until
 * its socket is closed in every process (onr_epoll_sock_closed), as Linux keeps a
 * registration until the file's last fd goes. */
void onr_epoll_forget(int fd);

/* Set errno from a -errno result; returns -1, or the result when it is not negative. */
static inline long onr_ret(long rc)
{
	if (rc < 0) {
		errno = (int)-rc;
		return -1;
	}
	return rc;
}

/* ---- poll.c / epoll.c: the shared wait loop (added by the poll/epoll helper) ------------ */

/*
 * One blocking readiness wait over accelerated and kernel fds, for poll, select and epoll
 * alike. The caller embeds a waiter in its own context; onr_wait drives it (design §8):
 * scan the stack, check the kernel with a zero timeout, spin for EF_POLL_USEC, then sleep in
 * the kernel on the caller's kernel fds plus the wake and link fds.
 */
struct onr_waiter {
	/* Under the stack lock, after a stack turn: record the accelerated fds that are ready;
	 * returns how many. keep: what the last kernel call found (a sleep) is still wanted. */
	int (*scan)(struct onr_waiter *w, bool keep);
	/* Without the lock: the caller's kernel fds; ts NULL waits forever. sleep: also wake on
	 * onr_wake_fd() and onr_link_fd() (never reported), with the signal mask `mask`.
	 * Returns how many of the caller's fds are ready, or -errno. */
	int (*kpoll)(struct onr_waiter *w, const struct timespec *ts, const sigset_t *mask,
		     bool sleep);
	bool kernel; /* there are kernel fds worth a zero-timeout check between scans */
};

/* Wait until something is ready or deadline_ns (CLOCK_MONOTONIC; -1: never) passes.
 * Returns > 0 when something is ready, 0 on timeout, -errno (-EINTR: a signal came). */
int onr_wait(struct onr_waiter *w, int64_t deadline_ns, const sigset_t *mask);
/* The deadline (as onr_wait takes it) of a timeout in ms (< 0: none), or of a timespec
 * (NULL: none); the latter returns 0, or -EINVAL when ts is not a valid duration. */
int64_t onr_deadline_ms(int ms);
int onr_deadline_ts(const struct timespec *ts, int64_t *deadline_ns);

/* An accelerated fd whose kernel socket listens too (ONR_FDF_KLISTEN, a TCP socket in
 * LISTEN): poll, select and epoll watch that kernel socket as well (poll.c). */
bool onr_fd_kernel_listens(const struct onr_fd *e);

/* Called by close/dup2/dup3/close_range for any fd about to go away that is not a socket of
 * ours (cheap when it is no epoll fd): this name of an epoll set goes; the set's record goes
 * with its last name in any process (epoll.c). */
void onr_epoll_closed(int epfd);
/* After a kernel dup of a descriptor that is not a socket of ours: when fd is an epoll fd,
 * fd2 names its set too. Returns fd2; errno untouched. Never with the fd table lock held. */
int onr_epoll_dup(int fd, int fd2);

/* The epoll arena, shared by the stack family: made when the stack starts (before any fork
 * can share it), sized from its socket count. Returns 0 or -errno. */
int onr_epoll_start(uint32_t n_socks);
/* Stack lock held. A stack socket is closed in every process (its refs reached 0): it
 * leaves every epoll set. */
void onr_epoll_sock_closed(uint32_t sock_id);
/* Stack and fd table locks held, around fork: every epoll set this process names gains
 * (delta 1) or loses again (-1, the fork failed) a name for the child. */
void onr_epoll_fork(int delta);
/* Stack lock held: the process ends (or its image does): its epoll names go. */
void onr_epoll_exit(void);

/* ---- end of the poll/epoll block ---------------------------------------------------------- */

#endif
