/*
 * shim/intercept/epoll.c — epoll over accelerated and kernel fds (design §8). The epoll fd is
 * always the kernel's and holds the kernel fds. Accelerated members live in a record of this
 * process beside it: their readiness comes from the stack, scanned by epoll_wait under the
 * lock (level, edge, one-shot). The kernel set also holds, under tagged data the user never
 * sees, the stack's wake and link fds (so that a sleep in the kernel wakes for the stack)
 * and the kernel sockets of listeners that listen in the kernel too.
 *
 * Records are process-local memory, copied by fork: an epoll set that parent and child
 * share diverges once either side changes it (the kernel's half stays shared).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "intercept.h"

#define EXPORT __attribute__((visibility("default")))

/* Tags of the kernel set's internal entries: high word a marker, low word the fd. A user's
 * own data could only collide with a value whose high word is one of these; no user-space
 * pointer on x86-64 or arm64 has it. */
#define EP_TAG_MASK	0xffffffff00000000ULL
#define EP_TAG_INTERNAL 0x4f4e525000000000ULL /* "ONRP": wake or link fd, dropped */
#define EP_TAG_KLISTEN	0x4f4e524b00000000ULL /* "ONRK": a listener's kernel socket */

/* epoll_ctl(2): the only flags EPOLLEXCLUSIVE may come with (fs/eventpoll.c). */
#define EP_EXCLUSIVE_OK \
	(EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)
#define EP_FLAGS (EPOLLET | EPOLLONESHOT | EPOLLWAKEUP | EPOLLEXCLUSIVE)

#define EP_DIR_CHUNK 1024 /* records by epoll fd: a directory of chunks (up to 1 << 20) */
#define EP_DIR_N     1024

struct ep_member {
	int fd;
	uint32_t events;   /* as asked, EPOLLET/ONESHOT/EXCLUSIVE included */
	epoll_data_t data; /* the user's */
	bool armed;	   /* EPOLLONESHOT: false once reported, until EPOLL_CTL_MOD */
	bool pending;	   /* added while undecided: it sits in the kernel set */
	bool klisten;	   /* its kernel socket is in the kernel set too, tagged */
	bool seen;	   /* seen_seq is valid */
	uint32_t seen_seq; /* onr_fd_wake_seq when last reported (EPOLLET) */
	uint64_t out_call; /* the epoll_wait call that reported it last ... */
	int out_idx;	   /* ... at this index of its events (one event per fd) */
};

struct ep_rec {
	int epfd;
	struct ep_member *m; /* dense, for the scan */
	int nm, cap;
	int *slot; /* by fd: index in m + 1; 0: not a member */
	int nslot;
	int npending;	      /* members still pending */
	int rotor;	      /* where the next scan starts, so a busy socket starves no other */
	int wake_fd, link_fd; /* in the kernel set under EP_TAG_INTERNAL */
	struct ep_rec *next;
};

/*
 * ep_mu guards every record. Order: the stack lock, then ep_mu (epoll_wait scans under
 * both; close may forget an fd with the stack lock held). Never held while sleeping.
 */
static pthread_mutex_t ep_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ep_rec **ep_dir[EP_DIR_N];
static struct ep_rec *ep_list;
static uint64_t ep_calls; /* numbers epoll_wait calls, for merging one fd's two halves */
static pthread_once_t ep_once = PTHREAD_ONCE_INIT;

/* ---- records ---------------------------------------------------------------------------- */

static void ep_fork_prepare(void)
{
	pthread_mutex_lock(&ep_mu);
}

static void ep_fork_parent(void)
{
	pthread_mutex_unlock(&ep_mu);
}

static void ep_fork_child(void)
{
	pthread_mutex_init(&ep_mu, NULL);
}

/* A child must not inherit ep_mu held by a thread that does not exist there. */
static void ep_init_once(void)
{
	pthread_atfork(ep_fork_prepare, ep_fork_parent, ep_fork_child);
}

/* Whether epfd has a record: a plain load, so that a set without accelerated members costs
 * epoll_wait nothing. */
static bool ep_has_rec(int epfd)
{
	struct ep_rec **chunk;

	if ((unsigned)epfd >= EP_DIR_CHUNK * EP_DIR_N)
		return false;
	chunk = __atomic_load_n(&ep_dir[epfd / EP_DIR_CHUNK], __ATOMIC_ACQUIRE);
	return chunk && __atomic_load_n(&chunk[epfd % EP_DIR_CHUNK], __ATOMIC_RELAXED);
}

/* ep_mu held. */
static struct ep_rec *ep_find(int epfd)
{
	struct ep_rec **chunk;

	if ((unsigned)epfd >= EP_DIR_CHUNK * EP_DIR_N)
		return NULL;
	chunk = ep_dir[epfd / EP_DIR_CHUNK];
	return chunk ? chunk[epfd % EP_DIR_CHUNK] : NULL;
}

static struct ep_member *ep_member_of(struct ep_rec *rec, int fd)
{
	if (!rec || fd < 0 || fd >= rec->nslot || !rec->slot[fd])
		return NULL;
	return &rec->m[rec->slot[fd] - 1];
}

static int ep_internal_add(int epfd, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EP_TAG_INTERNAL | (uint32_t)fd};

	if (fd < 0 || real_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

static void ep_internal_del(int epfd, int fd)
{
	if (fd >= 0)
		real_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

/*
 * The record of epfd, made on its first accelerated member. Adding the wake and link fds
 * to the kernel set also proves epfd is an epoll fd (EBADF, EINVAL as epoll_ctl says).
 */
static int ep_rec_make(int epfd, struct ep_rec **out)
{
	struct ep_rec **chunk = NULL, *rec;
	int ci = epfd / EP_DIR_CHUNK, rc;

	if ((unsigned)epfd >= EP_DIR_CHUNK * EP_DIR_N)
		return -ENOMEM;
	pthread_once(&ep_once, ep_init_once);
	if (!ep_dir[ci]) {
		chunk = calloc(EP_DIR_CHUNK, sizeof(*chunk));
		if (!chunk)
			return -ENOMEM;
	}
	rec = calloc(1, sizeof(*rec));
	if (!rec) {
		rc = -ENOMEM;
		goto out_free_chunk;
	}
	rec->epfd = epfd;
	rec->wake_fd = onr_wake_fd();
	rec->link_fd = onr_link_fd();
	rc = ep_internal_add(epfd, rec->wake_fd);
	if (rc)
		goto out_free_rec;
	rc = ep_internal_add(epfd, rec->link_fd);
	if (rc)
		goto out_del_wake;
	if (chunk)
		__atomic_store_n(&ep_dir[ci], chunk, __ATOMIC_RELEASE);
	__atomic_store_n(&ep_dir[ci][epfd % EP_DIR_CHUNK], rec, __ATOMIC_RELAXED);
	rec->next = ep_list;
	ep_list = rec;
	*out = rec;
	return 0;

out_del_wake:
	ep_internal_del(epfd, rec->wake_fd);
out_free_rec:
	free(rec);
out_free_chunk:
	free(chunk);
	return rc;
}

/* Forget the record; unregister: with the kernel set's fds left alone (epfd is closing, or
 * may be shared with a child that still uses it). */
static void ep_rec_destroy(struct ep_rec *rec, bool unregister)
{
	struct ep_rec **pp;

	if (unregister) {
		for (int i = 0; i < rec->nm; i++)
			if (rec->m[i].klisten)
				real_epoll_ctl(rec->epfd, EPOLL_CTL_DEL, rec->m[i].fd, NULL);
		ep_internal_del(rec->epfd, rec->wake_fd);
		ep_internal_del(rec->epfd, rec->link_fd);
	}
	__atomic_store_n(&ep_dir[rec->epfd / EP_DIR_CHUNK][rec->epfd % EP_DIR_CHUNK], NULL,
			 __ATOMIC_RELAXED);
	for (pp = &ep_list; *pp != rec; pp = &(*pp)->next)
		;
	*pp = rec->next;
	free(rec->m);
	free(rec->slot);
	free(rec);
}

/* Room for one more member and for fd in the slot array (allocation happens only here,
 * in epoll_ctl). */
static int ep_rec_reserve(struct ep_rec *rec, int fd)
{
	if (rec->nm == rec->cap) {
		int cap = rec->cap ? 2 * rec->cap : 16;
		struct ep_member *m = realloc(rec->m, (size_t)cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		rec->m = m;
		rec->cap = cap;
	}
	if (fd >= rec->nslot) {
		int n = fd + 1 > 2 * rec->nslot ? fd + 1 : 2 * rec->nslot;
		int *slot = realloc(rec->slot, (size_t)n * sizeof(*slot));

		if (!slot)
			return -ENOMEM;
		memset(slot + rec->nslot, 0, (size_t)(n - rec->nslot) * sizeof(*slot));
		rec->slot = slot;
		rec->nslot = n;
	}
	return 0;
}

static struct ep_member *ep_member_add(struct ep_rec *rec, int fd, const struct epoll_event *ev)
{
	struct ep_member *m;

	if (ep_rec_reserve(rec, fd))
		return NULL;
	m = &rec->m[rec->nm++];
	*m = (struct ep_member){.fd = fd, .events = ev->events, .data = ev->data, .armed = true};
	rec->slot[fd] = rec->nm;
	return m;
}

/* Swap the last member into the hole; the record goes with its last member, so that the
 * set's waits pass straight to the kernel again. */
static void ep_member_remove(struct ep_rec *rec, struct ep_member *m)
{
	int idx = (int)(m - rec->m);

	rec->npending -= m->pending;
	rec->slot[m->fd] = 0;
	if (idx != rec->nm - 1) {
		*m = rec->m[rec->nm - 1];
		rec->slot[m->fd] = idx + 1;
	}
	rec->nm--;
	if (rec->rotor >= rec->nm)
		rec->rotor = 0;
	if (rec->nm == 0)
		ep_rec_destroy(rec, true);
}

/* ---- the kernel half of a listener ------------------------------------------------------ */

static int ep_klisten_ctl(struct ep_rec *rec, int op, struct ep_member *m, uint32_t events)
{
	struct epoll_event kev = {.events = events, .data.u64 = EP_TAG_KLISTEN | (uint32_t)m->fd};

	return real_epoll_ctl(rec->epfd, op, m->fd, &kev) ? -errno : 0;
}

/* The listener became one after it was added (listen after EPOLL_CTL_ADD), or stopped. */
static void ep_klisten_sync(struct ep_rec *rec, struct ep_member *m, const struct onr_fd *e)
{
	bool want = onr_fd_kernel_listens(e);

	if (want == m->klisten)
		return;
	if (want)
		m->klisten = ep_klisten_ctl(rec, EPOLL_CTL_ADD, m, m->events) == 0;
	else
		m->klisten = ep_klisten_ctl(rec, EPOLL_CTL_DEL, m, 0) != 0;
}

/* One-shot fired from the stack's half: the kernel's half must not fire again. */
static void ep_klisten_disarm(struct ep_rec *rec, struct ep_member *m)
{
	if (m->klisten)
		ep_klisten_ctl(rec, EPOLL_CTL_MOD, m, EPOLLONESHOT);
}

/*
 * A member added while its socket was undecided sits in the kernel set; now accelerated,
 * it moves to the stack's half (the kernel socket would only ever say "unconnected").
 */
static void ep_member_migrate(struct ep_rec *rec, struct ep_member *m, const struct onr_fd *e)
{
	real_epoll_ctl(rec->epfd, EPOLL_CTL_DEL, m->fd, NULL);
	m->pending = false;
	rec->npending--;
	ep_klisten_sync(rec, m, e);
}

/* Pending members whose socket was decided: to the stack, or left to the kernel. May
 * destroy the record; returns it, or NULL. */
static struct ep_rec *ep_resolve_pending(struct ep_rec *rec)
{
	for (int i = rec->nm - 1; i >= 0 && rec->npending; i--) {
		struct ep_member *m = &rec->m[i];
		const struct onr_fd *e;

		if (!m->pending)
			continue;
		e = onr_fd_get(m->fd);
		if (e && e->kind == ONR_FD_PENDING)
			continue;
		if (e && e->kind == ONR_FD_STACK) {
			ep_member_migrate(rec, m, e);
			continue;
		}
		if (rec->nm == 1) {
			ep_member_remove(rec, m);
			return NULL;
		}
		ep_member_remove(rec, m);
	}
	return rec;
}

/* ---- epoll_ctl ---------------------------------------------------------------------------- */

static int ep_ctl_add(int epfd, struct ep_rec *rec, int fd, const struct epoll_event *ev,
		      const struct onr_fd *e)
{
	struct ep_member *m;
	int rc;

	if (!rec) {
		rc = ep_rec_make(epfd, &rec);
		if (rc)
			return rc;
	}
	m = ep_member_add(rec, fd, ev);
	if (!m) {
		if (rec->nm == 0)
			ep_rec_destroy(rec, true);
		return -ENOMEM;
	}
	if (onr_fd_kernel_listens(e)) {
		rc = ep_klisten_ctl(rec, EPOLL_CTL_ADD, m, ev->events);
		if (rc) {
			ep_member_remove(rec, m);
			return rc;
		}
		m->klisten = true;
	}
	return 0;
}

static int ep_ctl_mod(struct ep_rec *rec, struct ep_member *m, const struct epoll_event *ev)
{
	int rc;

	if (m->events & EPOLLEXCLUSIVE)
		return -EINVAL;
	if (m->klisten) {
		rc = ep_klisten_ctl(rec, EPOLL_CTL_MOD, m, ev->events);
		if (rc)
			return rc;
	}
	m->events = ev->events;
	m->data = ev->data;
	m->armed = true;
	m->seen = false; /* Linux queues the item again when it is ready at MOD */
	return 0;
}

/*
 * MOD or DEL of an accelerated fd this record does not know: it may sit in the kernel set,
 * added before we could see it (another path, an fd dup'd from it). Taking it out of the
 * kernel set finds out, and proves epfd valid when it is not there (ENOENT, EBADF, EINVAL).
 */
static int ep_ctl_unknown(int epfd, struct ep_rec *rec, int op, int fd,
			  const struct epoll_event *ev, const struct onr_fd *e)
{
	if (real_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL))
		return -errno;
	return op == EPOLL_CTL_DEL ? 0 : ep_ctl_add(epfd, rec, fd, ev, e);
}

static int ep_ctl_stack(int epfd, int op, int fd, const struct epoll_event *ev,
			const struct onr_fd *e)
{
	struct ep_rec *rec;
	struct ep_member *m;
	int rc;

	if (op != EPOLL_CTL_DEL && !ev)
		return -EFAULT;
	if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD && op != EPOLL_CTL_DEL)
		return -EINVAL;
	if (op != EPOLL_CTL_DEL && (ev->events & EPOLLEXCLUSIVE) &&
	    (op == EPOLL_CTL_MOD || (ev->events & ~EP_EXCLUSIVE_OK)))
		return -EINVAL;
	pthread_mutex_lock(&ep_mu);
	rec = ep_find(epfd);
	m = ep_member_of(rec, fd);
	if (m && m->pending)
		ep_member_migrate(rec, m, e);
	if (op == EPOLL_CTL_ADD)
		rc = m ? -EEXIST : ep_ctl_add(epfd, rec, fd, ev, e);
	else if (!m)
		rc = ep_ctl_unknown(epfd, rec, op, fd, ev, e);
	else if (op == EPOLL_CTL_MOD)
		rc = ep_ctl_mod(rec, m, ev);
	else {
		if (m->klisten)
			ep_klisten_ctl(rec, EPOLL_CTL_DEL, m, 0);
		ep_member_remove(rec, m);
		rc = 0;
	}
	pthread_mutex_unlock(&ep_mu);
	return rc;
}

/* An undecided socket goes to the kernel set as it is; the record remembers it, so that it
 * moves to the stack's half when connect or listen accelerates it. Best effort: without
 * memory it stays a kernel member, as it would be without onramp. */
static void ep_ctl_pending(int epfd, int op, int fd, const struct epoll_event *ev)
{
	struct ep_rec *rec;
	struct ep_member *m;

	if (!onr_stack_if_ready())
		return;
	pthread_mutex_lock(&ep_mu);
	rec = ep_find(epfd);
	m = ep_member_of(rec, fd);
	if (op == EPOLL_CTL_ADD && !m && (rec || ep_rec_make(epfd, &rec) == 0)) {
		m = ep_member_add(rec, fd, ev);
		if (m) {
			m->pending = true;
			rec->npending++;
		} else if (rec->nm == 0) {
			ep_rec_destroy(rec, true);
		}
	} else if (op == EPOLL_CTL_MOD && m) {
		m->events = ev->events;
		m->data = ev->data;
	} else if (op == EPOLL_CTL_DEL && m) {
		ep_member_remove(rec, m);
	}
	pthread_mutex_unlock(&ep_mu);
}

EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	const struct onr_fd *e;
	int saved, rc;

	ONR_REAL_READY();
	e = onr_fd_get(fd);
	if (!e)
		return real_epoll_ctl(epfd, op, fd, ev);
	if (e->kind == ONR_FD_PENDING) {
		rc = real_epoll_ctl(epfd, op, fd, ev);
		if (rc == 0) {
			saved = errno;
			ep_ctl_pending(epfd, op, fd, ev);
			errno = saved;
		}
		return rc;
	}
	if (e->kind != ONR_FD_STACK)
		return real_epoll_ctl(epfd, op, fd, ev);
	saved = errno;
	rc = ep_ctl_stack(epfd, op, fd, ev, e);
	if (rc == 0)
		errno = saved;
	return (int)onr_ret(rc);
}

EXPORT int epoll_create(int size)
{
	int fd;

	ONR_REAL_READY();
	fd = real_epoll_create(size);
	if (fd >= 0)
		onr_epoll_closed(fd); /* a record left by a close we did not see */
	return fd;
}

EXPORT int epoll_create1(int flags)
{
	int fd;

	ONR_REAL_READY();
	fd = real_epoll_create1(flags);
	if (fd >= 0)
		onr_epoll_closed(fd);
	return fd;
}

void onr_epoll_closed(int epfd)
{
	struct ep_rec *rec;

	if (!ep_has_rec(epfd))
		return;
	pthread_mutex_lock(&ep_mu);
	rec = ep_find(epfd);
	if (rec)
		ep_rec_destroy(rec, false);
	pthread_mutex_unlock(&ep_mu);
}

/* Linux drops a closed file from every epoll set (when its last fd goes). */
void onr_epoll_forget(int fd)
{
	struct ep_rec *rec, *next;

	pthread_mutex_lock(&ep_mu);
	for (rec = ep_list; rec; rec = next) {
		struct ep_member *m = ep_member_of(rec, fd);

		next = rec->next;
		if (m)
			ep_member_remove(rec, m); /* its kernel socket leaves the set with it */
	}
	pthread_mutex_unlock(&ep_mu);
}

/* ---- epoll_wait ------------------------------------------------------------------------- */

struct ep_wait {
	struct onr_waiter w;
	int epfd;
	struct epoll_event *ev;
	int max;
	int nout;      /* events in ev so far */
	uint64_t call; /* this call's number (ep_member.out_call) */
};

/* The stack's half of a member: what to report now, or 0. */
static uint32_t ep_member_ready(struct ep_rec *rec, struct ep_member *m, uint32_t *seq)
{
	const struct onr_fd *e = onr_fd_get(m->fd);
	uint32_t rev;

	if (m->pending || !e || e->kind != ONR_FD_STACK)
		return 0;
	ep_klisten_sync(rec, m, e);
	/* poll bits are epoll bits on Linux (EPOLLIN == POLLIN, ...) */
	rev =
	    (uint32_t)(uint16_t)onr_fd_revents(e) & ((m->events & ~EP_FLAGS) | EPOLLERR | EPOLLHUP);
	if (!rev)
		return 0;
	*seq = onr_fd_wake_seq(e);
	return rev;
}

static void ep_report(struct ep_wait *ew, struct ep_rec *rec, struct ep_member *m, uint32_t rev,
		      uint32_t seq)
{
	ew->ev[ew->nout] = (struct epoll_event){.events = rev, .data = m->data};
	m->out_call = ew->call;
	m->out_idx = ew->nout++;
	m->seen = true;
	m->seen_seq = seq;
	if (m->events & EPOLLONESHOT) {
		m->armed = false;
		ep_klisten_disarm(rec, m);
	}
}

static int ep_scan_members(struct ep_wait *ew, struct ep_rec *rec)
{
	int start = rec->rotor, nm = rec->nm, found = 0;

	for (int j = 0; j < nm && ew->nout < ew->max; j++) {
		int idx = (start + j) % nm;
		struct ep_member *m = &rec->m[idx];
		uint32_t rev, seq = 0;

		if (!m->armed && m->out_call != ew->call)
			continue;
		rev = ep_member_ready(rec, m, &seq);
		if (!rev)
			continue;
		if (m->out_call == ew->call) { /* its kernel half came first: one event */
			ew->ev[m->out_idx].events |= rev;
			continue;
		}
		if ((m->events & EPOLLET) && m->seen && m->seen_seq == seq)
			continue;
		ep_report(ew, rec, m, rev, seq);
		found++;
		if (ew->nout == ew->max)
			rec->rotor = (idx + 1) % nm;
	}
	return found;
}

static int ep_wait_scan(struct onr_waiter *w, bool keep)
{
	struct ep_wait *ew = (struct ep_wait *)w;
	struct ep_rec *rec;
	int found = 0;

	if (!keep)
		ew->nout = 0;
	pthread_mutex_lock(&ep_mu);
	rec = ep_find(ew->epfd);
	if (rec && rec->npending)
		rec = ep_resolve_pending(rec);
	if (rec)
		found = ep_scan_members(ew, rec);
	pthread_mutex_unlock(&ep_mu);
	return found;
}

/* A listener's kernel half: merged into its stack half's event, or reported with the
 * member's data. ep_mu held. */
static void ep_klisten_event(struct ep_wait *ew, struct ep_rec *rec, int fd, uint32_t kev, int *out)
{
	struct ep_member *m = ep_member_of(rec, fd);

	if (!m || !m->klisten)
		return;
	if (m->out_call == ew->call) {
		ew->ev[m->out_idx].events |= kev;
		return;
	}
	if (!m->armed)
		return;
	ew->ev[*out] = (struct epoll_event){.events = kev, .data = m->data};
	m->out_call = ew->call;
	m->out_idx = (*out)++;
	if (m->events & EPOLLONESHOT)
		m->armed = false; /* the kernel disarmed its half itself */
}

/* The kernel's events at ev[from, from + n): internal ones dropped, a listener's kernel
 * half translated; the rest are the user's. Returns how many remain. */
static int ep_kernel_filter(struct ep_wait *ew, int from, int n)
{
	struct ep_rec *rec;
	int out = from;

	pthread_mutex_lock(&ep_mu);
	rec = ep_find(ew->epfd);
	for (int i = from; i < from + n; i++) {
		struct epoll_event k = ew->ev[i];
		uint64_t tag = k.data.u64 & EP_TAG_MASK;

		if (tag == EP_TAG_INTERNAL)
			continue;
		if (tag == EP_TAG_KLISTEN) {
			if (rec)
				ep_klisten_event(ew, rec, (int)(uint32_t)k.data.u64, k.events,
						 &out);
			continue;
		}
		ew->ev[out++] = k;
	}
	pthread_mutex_unlock(&ep_mu);
	return out - from;
}

/*
 * The sleep is a ppoll on the epoll fd, then a zero-timeout epoll_wait harvests. epoll_wait
 * itself returns EINTR when io_uring task work (the tap link's completions, queued to the
 * thread that submitted them) interrupts it, although no handler ran; ppoll restarts
 * then, as the kernel does for a signal without a handler, and still returns EINTR for a
 * real one, with the caller's mask applied atomically.
 */
static int ep_wait_kpoll(struct onr_waiter *w, const struct timespec *ts, const sigset_t *mask,
			 bool sleep)
{
	struct ep_wait *ew = (struct ep_wait *)w;
	struct epoll_event *ev = ew->ev + ew->nout;
	int room = ew->max - ew->nout, n;

	if (room == 0)
		return 0;
	if (sleep) {
		struct pollfd p = {.fd = ew->epfd, .events = POLLIN};

		/* the wake and link fds are in the kernel set: they make it readable */
		n = real_ppoll(&p, 1, ts, mask);
		if (n <= 0)
			return n < 0 ? -errno : 0;
	}
	n = real_epoll_wait(ew->epfd, ev, room, 0);
	if (n < 0)
		return -errno;
	n = ep_kernel_filter(ew, ew->nout, n);
	ew->nout += n;
	return n;
}

static int ep_wait_mixed(int epfd, struct epoll_event *ev, int max, int64_t deadline_ns,
			 const sigset_t *mask)
{
	struct ep_wait ew = {{ep_wait_scan, ep_wait_kpoll, true}, epfd, ev, max, 0, 0};
	int saved = errno, rc;

	if (max <= 0)
		return (int)onr_ret(-EINVAL);
	ew.call = __atomic_add_fetch(&ep_calls, 1, __ATOMIC_RELAXED);
	rc = onr_wait(&ew.w, deadline_ns, mask);
	if (rc < 0)
		return (int)onr_ret(rc);
	errno = saved;
	return ew.nout;
}

/*
 * A set without accelerated members, in a process whose stack runs: the kernel's wait, but
 * an EINTR that no handler caused is waited through. io_uring completes the tap's requests
 * through task work on the thread that submitted them, and that notification ends the
 * thread's epoll_wait with EINTR (liburing issue 504) where no signal came. Elsewhere the
 * call goes straight to the kernel.
 */
static int ep_kernel_wait(int epfd, struct epoll_event *ev, int max, int64_t deadline_ns,
			  const sigset_t *m)
{
	uint64_t sigs = onr_signal_count();

	for (;;) {
		int64_t left = deadline_ns < 0 ? -1 : deadline_ns - onr_now_ns();
		int ms = left < 0 ? -1 : (int)((left + 999999) / 1000000);
		int rc;

		if (deadline_ns >= 0 && left < 0)
			ms = 0;
		rc = real_epoll_pwait(epfd, ev, max, ms, m);
		if (rc >= 0 || errno != EINTR || onr_signal_count() != sigs)
			return rc;
	}
}

EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int ms)
{
	ONR_REAL_READY();
	if (!ep_has_rec(epfd)) {
		if (!onr_stack_if_ready())
			return real_epoll_wait(epfd, ev, max, ms);
		return ep_kernel_wait(epfd, ev, max, onr_deadline_ms(ms), NULL);
	}
	return ep_wait_mixed(epfd, ev, max, onr_deadline_ms(ms), NULL);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int ms, const sigset_t *m)
{
	ONR_REAL_READY();
	if (!ep_has_rec(epfd)) {
		if (!onr_stack_if_ready())
			return real_epoll_pwait(epfd, ev, max, ms, m);
		return ep_kernel_wait(epfd, ev, max, onr_deadline_ms(ms), m);
	}
	return ep_wait_mixed(epfd, ev, max, onr_deadline_ms(ms), m);
}

EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *t,
			const sigset_t *m)
{
	int64_t deadline;
	int rc;

	ONR_REAL_READY();
	if (!ep_has_rec(epfd) && !onr_stack_if_ready())
		return real_epoll_pwait2(epfd, ev, max, t, m);
	rc = onr_deadline_ts(t, &deadline);
	if (rc)
		return (int)onr_ret(rc);
	if (!ep_has_rec(epfd))
		return ep_kernel_wait(epfd, ev, max, deadline, m);
	return ep_wait_mixed(epfd, ev, max, deadline, m);
}
