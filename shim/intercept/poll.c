/*
 * shim/intercept/poll.c — poll, ppoll, select and pselect over accelerated and kernel fds
 * (design §8), and the wait loop that epoll.c shares. A set without an accelerated fd goes
 * to the kernel untouched. Otherwise the stack says which accelerated fds are ready (under
 * the lock, after one turn of its poll loop), the kernel says the rest with a zero timeout,
 * and when nothing is ready the caller spins for EF_POLL_USEC, then sleeps in the kernel on
 * its kernel fds plus the stack's wake and link fds, never holding the lock.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "intercept.h"
#include "tcp.h"

#define EXPORT __attribute__((visibility("default")))

#define POLL_STACK_MAX 64 /* entries copied on the stack; larger sets use the heap */
#define NS_PER_SEC     1000000000LL

extern void __chk_fail(void) __attribute__((noreturn));

/* ---- the wait loop (poll, select, epoll) ------------------------------------------------ */

int64_t onr_deadline_ms(int ms)
{
	if (ms < 0)
		return -1;
	return onr_now_ns() + (int64_t)ms * 1000000;
}

int onr_deadline_ts(const struct timespec *ts, int64_t *deadline_ns)
{
	if (!ts) {
		*deadline_ns = -1;
		return 0;
	}
	if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= NS_PER_SEC)
		return -EINVAL;
	/* beyond ~292 years the deadline would overflow: that is forever */
	if (ts->tv_sec >= INT64_MAX / NS_PER_SEC - 1) {
		*deadline_ns = -1;
		return 0;
	}
	*deadline_ns = onr_now_ns() + ts->tv_sec * NS_PER_SEC + ts->tv_nsec;
	return 0;
}

static void ns_to_ts(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / NS_PER_SEC;
	ts->tv_nsec = ns % NS_PER_SEC;
}

static void wait_stack_turn(void)
{
	struct stack_rt *rt = onr_stack_if_ready();

	if (rt)
		stack_rt_poll(rt);
}

/* Scan under the lock; a poller back from its sleep leaves first, so that the wake fd is
 * cleared only once every sleeper has seen it. */
static int wait_scan(struct onr_waiter *w, bool slept)
{
	int rc = onr_lock();

	if (rc)
		return rc;
	if (slept)
		onr_poller_leave();
	wait_stack_turn();
	rc = w->scan(w, slept);
	onr_unlock();
	return rc;
}

/*
 * Sleep unless the stack has something after all: the recheck and onr_poller_enter happen
 * under one hold of the lock, so a socket that becomes ready after the recheck writes the
 * wake fd we are about to sleep on (no lost wakeup). Returns > 0: the recheck found that
 * many; 0: slept (the poller must leave at the next scan); -errno (the poller has left).
 */
static int wait_sleep(struct onr_waiter *w, int64_t remain_ns, const sigset_t *mask, int *k)
{
	struct timespec ts;
	int rc = onr_lock();

	if (rc)
		return rc;
	wait_stack_turn();
	rc = w->scan(w, false);
	if (rc) {
		onr_unlock();
		return rc;
	}
	onr_poller_enter();
	onr_unlock();
	if (remain_ns >= 0)
		ns_to_ts(remain_ns, &ts);
	*k = w->kpoll(w, remain_ns >= 0 ? &ts : NULL, mask, true);
	if (*k < 0) {
		if (onr_lock() == 0) {
			onr_poller_leave();
			onr_unlock();
		}
		return *k;
	}
	return 0;
}

int onr_wait(struct onr_waiter *w, int64_t deadline_ns, const sigset_t *mask)
{
	static const struct timespec zero;
	int64_t spin_end = onr_now_ns() + onr_spin_ns(), now;
	uint64_t sigs = onr_signal_count();
	bool slept = false;
	int ready, k = 0, rc;

	for (;;) {
		ready = wait_scan(w, slept);
		if (ready < 0)
			return ready;
		/* after a sleep the kernel's answer is fresh already (and an edge-triggered
		 * epoll event it gave must not be asked for twice) */
		if (!slept)
			k = w->kernel ? w->kpoll(w, &zero, NULL, false) : 0;
		slept = false;
		if (k < 0)
			return k;
		if (ready + k > 0)
			return ready + k;
		if (onr_signal_count() != sigs)
			return -EINTR; /* a handler ran deferred or while we spun */
		now = onr_now_ns();
		if (deadline_ns >= 0 && now >= deadline_ns)
			return 0;
		if (now < spin_end) {
			/* a spinner gives way to any other thread runnable on its CPU: where
			 * cores are few that is often the peer or the softirq work it waits for */
			sched_yield();
			continue;
		}
		rc = wait_sleep(w, deadline_ns >= 0 ? deadline_ns - now : -1, mask, &k);
		if (rc)
			return rc;
		slept = true;
	}
}

/* ONR_FDF_KLISTEN is set by listen() once the kernel socket listens as well; the state
 * check keeps a socket that left LISTEN from reporting its kernel half. */
bool onr_fd_kernel_listens(const struct onr_fd *e)
{
	struct stack_rt *rt = onr_stack_if_ready();
	const struct stack_sock *so;

	if (!(e->flags & ONR_FDF_KLISTEN) || e->type != SOCK_T_TCP || !rt)
		return false;
	so = sock_get(&rt->stack, e->id);
	return so && so->state == TCPS_LISTEN;
}

/* ---- poll and ppoll --------------------------------------------------------------------- */

/*
 * The kernel's copy of the caller's array: accelerated fds become -1 (which the kernel skips),
 * except listeners whose kernel socket listens too; the wake and link fds follow the
 * caller's n entries and are passed only to sleep.
 */
struct pollset {
	struct onr_waiter w;
	struct pollfd *user;
	struct pollfd *k;
	nfds_t n, nextra;
};

static bool fd_is_stack(int fd)
{
	const struct onr_fd *e = onr_fd_get(fd);

	return e && e->kind == ONR_FD_STACK;
}

static bool pollfds_have_stack(const struct pollfd *f, nfds_t n)
{
	for (nfds_t i = 0; i < n; i++)
		if (fd_is_stack(f[i].fd))
			return true;
	return false;
}

static int pollset_scan(struct onr_waiter *w, bool keep)
{
	struct pollset *ps = (struct pollset *)w;
	int ready = 0;

	(void)keep; /* revents of the kernel's copy stay until the result is merged */
	for (nfds_t i = 0; i < ps->n; i++) {
		struct pollfd *p = &ps->user[i];
		const struct onr_fd *e = onr_fd_get(p->fd);

		p->revents = 0;
		if (!e || e->kind != ONR_FD_STACK)
			continue;
		p->revents = (short)(onr_fd_revents(e) & (p->events | POLLERR | POLLHUP));
		ready += p->revents != 0;
	}
	return ready;
}

static int pollset_kpoll(struct onr_waiter *w, const struct timespec *ts, const sigset_t *mask,
			 bool sleep)
{
	struct pollset *ps = (struct pollset *)w;
	nfds_t n = ps->n + (sleep ? ps->nextra : 0);
	int rc = real_ppoll(ps->k, n, ts, mask);

	if (rc < 0)
		return -errno;
	for (nfds_t i = ps->n; i < n; i++)
		rc -= ps->k[i].revents != 0;
	return rc;
}

static void pollset_add_extra(struct pollset *ps, int fd)
{
	if (fd < 0)
		return;
	ps->k[ps->n + ps->nextra++] = (struct pollfd){.fd = fd, .events = POLLIN};
}

static void pollset_init(struct pollset *ps, struct pollfd *f, nfds_t n, struct pollfd *k)
{
	*ps = (struct pollset){{pollset_scan, pollset_kpoll, false}, f, k, n, 0};
	for (nfds_t i = 0; i < n; i++) {
		const struct onr_fd *e = onr_fd_get(f[i].fd);

		k[i] = (struct pollfd){.fd = f[i].fd, .events = f[i].events};
		if (e && e->kind == ONR_FD_STACK && !onr_fd_kernel_listens(e))
			k[i].fd = -1;
		ps->w.kernel |= k[i].fd >= 0;
	}
	pollset_add_extra(ps, onr_wake_fd());
	pollset_add_extra(ps, onr_link_fd());
}

/* The stack's revents (in the caller's array) and the kernel's, per entry. */
static int pollset_merge(struct pollset *ps)
{
	int count = 0;

	for (nfds_t i = 0; i < ps->n; i++) {
		ps->user[i].revents |= ps->k[i].revents;
		count += ps->user[i].revents != 0;
	}
	return count;
}

static int poll_mixed(struct pollfd *f, nfds_t n, int64_t deadline_ns, const sigset_t *mask)
{
	struct pollfd small[POLL_STACK_MAX + 2], *k = small;
	struct pollset ps;
	int saved = errno, rc;

	if (n > POLL_STACK_MAX) {
		k = malloc((n + 2) * sizeof(*k));
		if (!k)
			return onr_ret(-ENOMEM);
	}
	pollset_init(&ps, f, n, k);
	rc = onr_wait(&ps.w, deadline_ns, mask);
	if (rc >= 0)
		rc = pollset_merge(&ps);
	if (k != small)
		free(k);
	if (rc >= 0)
		errno = saved;
	return (int)onr_ret(rc);
}

static int poll_impl(struct pollfd *f, nfds_t n, int ms)
{
	if (!pollfds_have_stack(f, n))
		return real_poll(f, n, ms);
	return poll_mixed(f, n, onr_deadline_ms(ms), NULL);
}

static int ppoll_impl(struct pollfd *f, nfds_t n, const struct timespec *t, const sigset_t *m)
{
	int64_t deadline;
	int rc;

	if (!pollfds_have_stack(f, n))
		return real_ppoll(f, n, t, m);
	rc = onr_deadline_ts(t, &deadline);
	if (rc)
		return (int)onr_ret(rc);
	return poll_mixed(f, n, deadline, m);
}

EXPORT int poll(struct pollfd *f, nfds_t n, int ms)
{
	ONR_REAL_READY();
	return poll_impl(f, n, ms);
}

EXPORT int __poll_chk(struct pollfd *f, nfds_t n, int ms, size_t flen)
{
	if (flen / sizeof(*f) < n)
		__chk_fail();
	ONR_REAL_READY();
	return poll_impl(f, n, ms);
}

EXPORT int ppoll(struct pollfd *f, nfds_t n, const struct timespec *t, const sigset_t *m)
{
	ONR_REAL_READY();
	return ppoll_impl(f, n, t, m);
}

EXPORT int __ppoll_chk(struct pollfd *f, nfds_t n, const struct timespec *t, const sigset_t *m,
		       size_t flen)
{
	if (flen / sizeof(*f) < n)
		__chk_fail();
	ONR_REAL_READY();
	return ppoll_impl(f, n, t, m);
}

/* ---- select and pselect ----------------------------------------------------------------- */

/*
 * fd_sets as arrays of words, sized by nfds rather than FD_SETSIZE: programs pass larger
 * sets, and FD_SET/FD_ISSET would abort on them under _FORTIFY_SOURCE. The kernel's part
 * goes to the real pselect, so its sets, masks and EBADF are exactly Linux's.
 */
#define SEL_BITS	(8 * (int)sizeof(unsigned long))
#define SEL_SMALL_WORDS (FD_SETSIZE / SEL_BITS)

enum { SEL_R, SEL_W, SEL_E, SEL_NSETS };

static bool sel_isset(const unsigned long *s, int fd)
{
	return s && (s[fd / SEL_BITS] >> (fd % SEL_BITS)) & 1;
}

static void sel_set(unsigned long *s, int fd)
{
	s[fd / SEL_BITS] |= 1UL << (fd % SEL_BITS);
}

static void sel_clr(unsigned long *s, int fd)
{
	s[fd / SEL_BITS] &= ~(1UL << (fd % SEL_BITS));
}

static int sel_words(int nfds)
{
	return (nfds + SEL_BITS - 1) / SEL_BITS;
}

struct selset {
	struct onr_waiter w;
	int n;				 /* the caller's nfds */
	int kn;				 /* nfds for the kernel when sleeping (wake, link) */
	int words;			 /* of every set below, enough for kn */
	unsigned long *user[SEL_NSETS];	 /* the caller's (NULL: not given) */
	unsigned long *kbase[SEL_NSETS]; /* the caller's minus accelerated fds */
	unsigned long *kout[SEL_NSETS];	 /* the kernel's last answer */
	unsigned long *sout[SEL_NSETS];	 /* the stack's last answer */
	int wake_fd, link_fd;
};

/* Every accelerated fd is below onr_fd_limit(): a larger n (which Linux clamps to the fd
 * table) is not read past it. */
static bool fdsets_have_stack(int n, fd_set *r, fd_set *w, fd_set *e)
{
	const unsigned long *sets[SEL_NSETS] = {(void *)r, (void *)w, (void *)e};

	if (n > onr_fd_limit())
		n = onr_fd_limit();

	for (int i = 0; i < sel_words(n); i++) {
		unsigned long word = 0;

		for (int s = 0; s < SEL_NSETS; s++)
			word |= sets[s] ? sets[s][i] : 0;
		if (i == n / SEL_BITS)
			word &= (1UL << (n % SEL_BITS)) - 1;
		while (word) {
			int bit = __builtin_ctzl(word);

			word &= word - 1;
			if (fd_is_stack(i * SEL_BITS + bit))
				return true;
		}
	}
	return false;
}

/* Read = POLLIN|POLLHUP|POLLERR, write = POLLOUT|POLLERR, except = POLLPRI (TCP urgent
 * data): Linux's POLLIN_SET, POLLOUT_SET, POLLEX_SET (fs/select.c). */
static int selset_scan(struct onr_waiter *w, bool keep)
{
	struct selset *ss = (struct selset *)w;
	int ready = 0;

	(void)keep;
	for (int s = 0; s < SEL_NSETS; s++)
		if (ss->user[s])
			memset(ss->sout[s], 0, (size_t)ss->words * sizeof(unsigned long));
	for (int fd = 0; fd < ss->n; fd++) {
		const struct onr_fd *e;
		short rev;

		if (!sel_isset(ss->user[SEL_R], fd) && !sel_isset(ss->user[SEL_W], fd) &&
		    !sel_isset(ss->user[SEL_E], fd))
			continue;
		e = onr_fd_get(fd);
		if (!e || e->kind != ONR_FD_STACK)
			continue;
		rev = onr_fd_revents(e);
		if (sel_isset(ss->user[SEL_R], fd) &&
		    (rev & (POLLIN | POLLRDNORM | POLLHUP | POLLERR))) {
			sel_set(ss->sout[SEL_R], fd);
			ready++;
		}
		if (sel_isset(ss->user[SEL_W], fd) && (rev & (POLLOUT | POLLWRNORM | POLLERR))) {
			sel_set(ss->sout[SEL_W], fd);
			ready++;
		}
		if (sel_isset(ss->user[SEL_E], fd) && (rev & POLLPRI)) {
			sel_set(ss->sout[SEL_E], fd);
			ready++;
		}
	}
	return ready;
}

static int selset_kpoll(struct onr_waiter *w, const struct timespec *ts, const sigset_t *mask,
			bool sleep)
{
	struct selset *ss = (struct selset *)w;
	fd_set *k[SEL_NSETS];
	int rc;

	for (int s = 0; s < SEL_NSETS; s++) {
		k[s] = NULL;
		if (ss->user[s]) {
			memcpy(ss->kout[s], ss->kbase[s],
			       (size_t)ss->words * sizeof(unsigned long));
			k[s] = (fd_set *)ss->kout[s];
		}
	}
	if (sleep) {
		if (ss->wake_fd >= 0)
			sel_set(ss->kout[SEL_R], ss->wake_fd);
		if (ss->link_fd >= 0)
			sel_set(ss->kout[SEL_R], ss->link_fd);
	}
	rc = real_pselect(sleep ? ss->kn : ss->n, k[SEL_R], k[SEL_W], k[SEL_E], ts, mask);
	if (rc < 0)
		return -errno;
	if (sleep) {
		int extra[2] = {ss->wake_fd, ss->link_fd};

		for (int i = 0; i < 2; i++)
			if (extra[i] >= 0 && sel_isset(ss->kout[SEL_R], extra[i])) {
				sel_clr(ss->kout[SEL_R], extra[i]);
				rc--;
			}
	}
	return rc;
}

/* Lays the sets out in `mem` (4 groups of 3 sets of ss->words words); the read set always
 * exists, as the wake and link fds sleep in it. */
static void selset_init(struct selset *ss, int n, fd_set *r, fd_set *wr, fd_set *e,
			unsigned long *mem, unsigned long *rdummy)
{
	size_t set = (size_t)ss->words * sizeof(unsigned long);
	fd_set *given[SEL_NSETS] = {r, wr, e};

	ss->w = (struct onr_waiter){selset_scan, selset_kpoll, false};
	ss->n = n;
	for (int s = 0; s < SEL_NSETS; s++) {
		ss->user[s] = (unsigned long *)given[s];
		ss->kbase[s] = mem + (size_t)(0 * SEL_NSETS + s) * ss->words;
		ss->kout[s] = mem + (size_t)(1 * SEL_NSETS + s) * ss->words;
		ss->sout[s] = mem + (size_t)(2 * SEL_NSETS + s) * ss->words;
		memset(ss->kbase[s], 0, set);
		memset(ss->kout[s], 0, set); /* when the kernel is never asked (no kernel fds) */
		if (ss->user[s])
			memcpy(ss->kbase[s], ss->user[s],
			       (size_t)sel_words(n) * sizeof(unsigned long));
	}
	if (!ss->user[SEL_R]) /* the kernel needs a read set to sleep on the wake fd */
		ss->user[SEL_R] = rdummy;
	for (int fd = 0; fd < n; fd++) {
		const struct onr_fd *f = onr_fd_get(fd);

		if (!f || f->kind != ONR_FD_STACK)
			continue;
		/* a listener that also listens in the kernel: its kernel socket is polled for
		 * reading too (accept takes from either) */
		if (!onr_fd_kernel_listens(f))
			sel_clr(ss->kbase[SEL_R], fd);
		sel_clr(ss->kbase[SEL_W], fd);
		sel_clr(ss->kbase[SEL_E], fd);
	}
	if (n % SEL_BITS) /* bits past n of the caller's last word */
		for (int s = 0; s < SEL_NSETS; s++)
			ss->kbase[s][n / SEL_BITS] &= (1UL << (n % SEL_BITS)) - 1;
	for (int s = 0; s < SEL_NSETS; s++)
		for (int i = 0; i < ss->words && !ss->w.kernel; i++)
			ss->w.kernel = ss->kbase[s][i] != 0;
}

static int selset_merge(struct selset *ss, fd_set *given[SEL_NSETS])
{
	int count = 0;

	for (int s = 0; s < SEL_NSETS; s++) {
		if (!given[s])
			continue;
		for (int i = 0; i < sel_words(ss->n); i++) {
			unsigned long word = ss->sout[s][i] | ss->kout[s][i];

			ss->user[s][i] = word;
			count += __builtin_popcountl(word);
		}
	}
	return count;
}

static int select_mixed(int n, fd_set *r, fd_set *w, fd_set *e, int64_t deadline_ns,
			const sigset_t *mask)
{
	unsigned long small[4 * SEL_NSETS * SEL_SMALL_WORDS], *mem = small, *rdummy;
	fd_set *given[SEL_NSETS] = {r, w, e};
	struct selset ss;
	int saved = errno, rc, kn = n;

	ss.wake_fd = onr_wake_fd();
	ss.link_fd = onr_link_fd();
	if (ss.wake_fd >= kn)
		kn = ss.wake_fd + 1;
	if (ss.link_fd >= kn)
		kn = ss.link_fd + 1;
	ss.kn = kn;
	ss.words = sel_words(kn);
	if (ss.words > SEL_SMALL_WORDS) {
		mem = malloc((size_t)ss.words * 4 * SEL_NSETS * sizeof(unsigned long));
		if (!mem)
			return onr_ret(-ENOMEM);
	}
	/* the fourth group: a read set for a caller that gave none */
	rdummy = mem + (size_t)3 * SEL_NSETS * ss.words;
	memset(rdummy, 0, (size_t)ss.words * sizeof(unsigned long));
	selset_init(&ss, n, r, w, e, mem, rdummy);
	rc = onr_wait(&ss.w, deadline_ns, mask);
	if (rc >= 0)
		rc = selset_merge(&ss, given);
	if (mem != small)
		free(mem);
	if (rc >= 0)
		errno = saved;
	return (int)onr_ret(rc);
}

/* Linux writes the time left back into select's timeval, on every return. */
static void select_time_left(struct timeval *t, int64_t deadline_ns)
{
	int64_t left = deadline_ns - onr_now_ns();

	if (left < 0)
		left = 0;
	t->tv_sec = left / NS_PER_SEC;
	t->tv_usec = (left % NS_PER_SEC) / 1000;
}

EXPORT int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t)
{
	int64_t deadline = -1;
	int rc;

	ONR_REAL_READY();
	if (n <= 0 || !fdsets_have_stack(n, r, w, e))
		return real_select(n, r, w, e, t);
	if (t) {
		if (t->tv_sec < 0 || t->tv_usec < 0)
			return (int)onr_ret(-EINVAL);
		/* Linux accepts tv_usec of a second or more and carries it */
		deadline =
		    onr_now_ns() + (int64_t)t->tv_sec * NS_PER_SEC + (int64_t)t->tv_usec * 1000;
	}
	rc = select_mixed(n, r, w, e, deadline, NULL);
	if (t)
		select_time_left(t, deadline);
	return rc;
}

EXPORT int pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t,
		   const sigset_t *m)
{
	int64_t deadline;
	int rc;

	ONR_REAL_READY();
	if (n <= 0 || !fdsets_have_stack(n, r, w, e))
		return real_pselect(n, r, w, e, t, m);
	rc = onr_deadline_ts(t, &deadline);
	if (rc)
		return (int)onr_ret(rc);
	return select_mixed(n, r, w, e, deadline, m);
}
