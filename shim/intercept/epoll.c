/*
 * shim/intercept/epoll.c — epoll over accelerated and kernel fds (design §8). The epoll fd is
 * always the kernel's and holds the kernel fds. Accelerated members live in a record beside
 * it: their readiness comes from the stack, scanned by epoll_wait under the lock (level,
 * edge, one-shot). The kernel set also holds, under tagged data the user never sees, the
 * stack's wake and link fds (so that a sleep in the kernel wakes for the stack) and the
 * kernel sockets of listeners that listen in the kernel too.
 *
 * In Linux an epoll set and its registrations belong to the open file description, shared by
 * every process that inherited it. So records and members live in the epoll arena: memory
 * shared by the processes of the stack family (mapped when the stack starts, inherited by
 * fork) and guarded by the stack lock. A process names a record through its directory (epoll
 * fd -> record, process local, copied by fork, as the fd table is); a record counts its
 * names and goes with the last. A member is keyed by its stack socket and the fd number
 * given at EPOLL_CTL_ADD (Linux keys (file, fd)); it stays while any process still has the
 * socket open, and goes when the socket is closed in every process (its refs reach 0).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "intercept.h"

#define EXPORT __attribute__((visibility("default")))

/* Tags of the kernel set's internal entries: high word a marker, low word an fd or member.
 * A user's own data could only collide with a value whose high word is one of these; no
 * user-space pointer on x86-64 or arm64 has it. */
#define EP_TAG_MASK	0xffffffff00000000ULL
#define EP_TAG_INTERNAL 0x4f4e525000000000ULL /* "ONRP": wake or link fd, dropped */
#define EP_TAG_KLISTEN	0x4f4e524b00000000ULL /* "ONRK": a listener's kernel socket (member) */

/* epoll_ctl(2): the only flags EPOLLEXCLUSIVE may come with (fs/eventpoll.c). */
#define EP_EXCLUSIVE_OK \
	(EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE)
#define EP_FLAGS (EPOLLET | EPOLLONESHOT | EPOLLWAKEUP | EPOLLEXCLUSIVE)

#define EP_NIL UINT32_MAX

/* Arena bounds, from the stack's socket count (EF_MAX_ENDPOINTS): a record per socket (an
 * epoll set with accelerated members, or named across a fork), members for every socket in
 * EP_MEMBERS_PER_SOCK sets. Past them epoll_ctl fails: ENOMEM for a record, ENOSPC for a
 * member (as max_user_watches does). */
#define EP_RECS_MIN	    64
#define EP_MEMBERS_PER_SOCK 4

/* The directory, by epoll fd: chunks made on first use (up to 1 << 20 fds). */
#define EP_DIR_CHUNK 1024
#define EP_DIR_N     1024
#define EP_DIR_KNOWN 1ULL /* an epoll fd (epoll_create) without a record yet */

/* ---- the arena (shared by the stack family; the stack lock guards it) ---------------------- */

struct ep_member {
	uint32_t rec;		     /* its record; EP_NIL: free */
	uint32_t sock_id;	     /* the stack socket */
	int32_t fd;		     /* the fd number given at EPOLL_CTL_ADD */
	uint32_t events;	     /* as asked, EPOLLET/ONESHOT/EXCLUSIVE included */
	uint64_t data;		     /* the user's epoll_data_t */
	uint32_t rec_prev, rec_next; /* the record's members: a ring */
	uint32_t sock_next;	     /* the socket's members, in every record; the free list */
	uint8_t armed;		     /* EPOLLONESHOT: 0 once reported, until EPOLL_CTL_MOD */
	uint8_t klisten;	     /* its kernel socket is in the kernel set too, tagged */
	uint8_t seen;		     /* seen_seq is valid */
	uint8_t reserved;
	uint32_t seen_seq; /* the socket's wake_seq when last reported (EPOLLET) */
	int32_t out_idx;   /* where out_call put it in its events (one event per member) */
	uint64_t out_call; /* the epoll_wait call that reported it last */
};
_Static_assert(sizeof(struct ep_member) == 56, "ep_member layout");

struct ep_rec {
	uint32_t refs;		  /* names: (process, epoll fd) pairs; 0: free */
	uint32_t gen;		  /* bumped when taken, so that a stale name never matches */
	uint32_t nmem;		  /* members */
	uint32_t head;		  /* the ring's first member, where a scan starts; EP_NIL */
	uint32_t kreg;		  /* the wake and link fds are in the kernel set */
	int32_t wake_fd, link_fd; /* as registered */
	uint32_t next_free;
};
_Static_assert(sizeof(struct ep_rec) == 32, "ep_rec layout");

/* The arena's header; then struct ep_rec recs[n_recs], struct ep_member members[n_members]
 * and uint32_t sock_head[n_socks] (each socket's first member). */
struct ep_arena {
	uint32_t n_recs, n_members, n_socks;
	uint32_t rec_free, rec_top; /* free records, then never used ones from rec_top */
	uint32_t mem_free, mem_top; /* the same for members */
	uint32_t reserved;
	uint64_t calls; /* numbers epoll_wait calls family-wide (ep_member.out_call) */
};

/* Process-local views of the arena (the mapping is at the same address after fork). */
static struct ep_arena *ep_ar;
static struct ep_rec *ep_recs;
static struct ep_member *ep_mem;
static uint32_t *ep_sock_head;

/* ---- process-local state ------------------------------------------------------------------- */

/* epoll fd -> 0, EP_DIR_KNOWN, or a record's name (ep_dir_val). Written under the stack lock
 * (EP_DIR_KNOWN marks without it), read with plain loads. */
static uint64_t *ep_dir[EP_DIR_N];

/*
 * Members added while their socket was undecided (ONR_FD_PENDING): they sit in the kernel
 * set, and move to the record when connect or listen accelerates them. Pending is a state of
 * this process's fd table, so this list is process local. ep_mu guards it; order: the stack
 * lock, then ep_mu.
 */
struct ep_pending {
	uint32_t rec, gen;
	int fd;
	uint32_t events;
	epoll_data_t data;
};

static pthread_mutex_t ep_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ep_pending *ep_pend;
static int ep_npend, ep_pend_cap;

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

/* ---- the arena ------------------------------------------------------------------------------ */

int onr_epoll_start(uint32_t n_socks)
{
	uint32_t n_recs = n_socks > EP_RECS_MIN ? n_socks : EP_RECS_MIN;
	uint32_t n_members = n_recs * EP_MEMBERS_PER_SOCK;
	size_t size = sizeof(struct ep_arena) + (size_t)n_recs * sizeof(struct ep_rec) +
		      (size_t)n_members * sizeof(struct ep_member) +
		      (size_t)n_socks * sizeof(uint32_t);
	/* untouched pages cost nothing: only the records and members in use are paid for */
	int flags = MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	ep_ar = p;
	*ep_ar = (struct ep_arena){n_recs, n_members, n_socks, EP_NIL, 0, EP_NIL, 0, 0, 0};
	ep_recs = (struct ep_rec *)(ep_ar + 1);
	ep_mem = (struct ep_member *)(ep_recs + n_recs);
	ep_sock_head = (uint32_t *)(ep_mem + n_members);
	memset(ep_sock_head, 0xff, (size_t)n_socks * sizeof(uint32_t));
	pthread_atfork(ep_fork_prepare, ep_fork_parent, ep_fork_child);
	return 0;
}

static uint64_t ep_dir_val(uint32_t ri)
{
	return (uint64_t)ep_recs[ri].gen << 32 | ((uint64_t)ri + 2);
}

static uint64_t ep_dir_load(int epfd)
{
	uint64_t *chunk;

	if ((unsigned)epfd >= EP_DIR_CHUNK * EP_DIR_N)
		return 0;
	chunk = __atomic_load_n(&ep_dir[epfd / EP_DIR_CHUNK], __ATOMIC_ACQUIRE);
	return chunk ? __atomic_load_n(&chunk[epfd % EP_DIR_CHUNK], __ATOMIC_ACQUIRE) : 0;
}

/* Returns false when epfd is past the directory or its chunk cannot be made. */
static bool ep_dir_store(int epfd, uint64_t v)
{
	uint64_t *chunk, *fresh;

	if ((unsigned)epfd >= EP_DIR_CHUNK * EP_DIR_N)
		return false;
	chunk = __atomic_load_n(&ep_dir[epfd / EP_DIR_CHUNK], __ATOMIC_ACQUIRE);
	if (!chunk) {
		if (!v)
			return true;
		fresh = calloc(EP_DIR_CHUNK, sizeof(*fresh));
		if (!fresh)
			return false;
		chunk = NULL;
		if (__atomic_compare_exchange_n(&ep_dir[epfd / EP_DIR_CHUNK], &chunk, fresh, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			chunk = fresh;
		else
			free(fresh);
	}
	__atomic_store_n(&chunk[epfd % EP_DIR_CHUNK], v, __ATOMIC_RELEASE);
	return true;
}

/* The record a directory value names, or EP_NIL (none, or a stale name). */
static uint32_t ep_rec_of_val(uint64_t v)
{
	uint32_t ri = (uint32_t)v - 2;

	if (v <= EP_DIR_KNOWN || !ep_ar || ri >= ep_ar->n_recs)
		return EP_NIL;
	if (__atomic_load_n(&ep_recs[ri].gen, __ATOMIC_RELAXED) != (uint32_t)(v >> 32) ||
	    !__atomic_load_n(&ep_recs[ri].refs, __ATOMIC_RELAXED))
		return EP_NIL;
	return ri;
}

static uint32_t ep_rec_of(int epfd)
{
	return ep_rec_of_val(ep_dir_load(epfd));
}

/* A fresh record with one name, or EP_NIL when the arena is full. Lock held. */
static uint32_t ep_rec_alloc(void)
{
	uint32_t ri = ep_ar->rec_free;
	struct ep_rec *r;

	if (ri != EP_NIL)
		ep_ar->rec_free = ep_recs[ri].next_free;
	else if (ep_ar->rec_top < ep_ar->n_recs)
		ri = ep_ar->rec_top++;
	else
		return EP_NIL;
	r = &ep_recs[ri];
	*r = (struct ep_rec){.refs = 1,
			     .gen = r->gen + 1,
			     .head = EP_NIL,
			     .wake_fd = -1,
			     .link_fd = -1,
			     .next_free = EP_NIL};
	return ri;
}

/* Name epfd's set with a new record (lock held); EP_NIL when the arena or directory is full. */
static uint32_t ep_rec_make(int epfd)
{
	uint32_t ri = ep_rec_alloc();

	if (ri == EP_NIL)
		return EP_NIL;
	if (!ep_dir_store(epfd, ep_dir_val(ri))) {
		ep_recs[ri].refs = 0;
		ep_recs[ri].next_free = ep_ar->rec_free;
		ep_ar->rec_free = ri;
		return EP_NIL;
	}
	return ri;
}

/* ---- members ---------------------------------------------------------------------------- */

static struct ep_member *ep_member_find(uint32_t ri, uint32_t sock_id, int fd)
{
	if (sock_id >= ep_ar->n_socks)
		return NULL;
	for (uint32_t mi = ep_sock_head[sock_id]; mi != EP_NIL; mi = ep_mem[mi].sock_next)
		if (ep_mem[mi].rec == ri && ep_mem[mi].fd == fd)
			return &ep_mem[mi];
	return NULL;
}

static struct ep_member *ep_member_add(uint32_t ri, uint32_t sock_id, int fd, uint32_t events,
				       epoll_data_t data)
{
	struct ep_rec *r = &ep_recs[ri];
	struct ep_member *m;
	uint32_t mi = ep_ar->mem_free;

	if (sock_id >= ep_ar->n_socks)
		return NULL;
	if (mi != EP_NIL)
		ep_ar->mem_free = ep_mem[mi].sock_next;
	else if (ep_ar->mem_top < ep_ar->n_members)
		mi = ep_ar->mem_top++;
	else
		return NULL;
	m = &ep_mem[mi];
	*m = (struct ep_member){.rec = ri,
				.sock_id = sock_id,
				.fd = fd,
				.events = events,
				.data = data.u64,
				.sock_next = ep_sock_head[sock_id],
				.armed = 1};
	ep_sock_head[sock_id] = mi;
	if (r->head == EP_NIL) {
		m->rec_prev = m->rec_next = mi;
		r->head = mi;
	} else { /* at the ring's end: the scan reaches it last */
		m->rec_next = r->head;
		m->rec_prev = ep_mem[r->head].rec_prev;
		ep_mem[m->rec_prev].rec_next = mi;
		ep_mem[r->head].rec_prev = mi;
	}
	__atomic_store_n(&r->nmem, r->nmem + 1, __ATOMIC_RELAXED);
	return m;
}

/* Out of its record and its socket's list, back to the free list. Lock held. */
static void ep_member_remove(struct ep_member *m)
{
	uint32_t mi = (uint32_t)(m - ep_mem), *pp;
	struct ep_rec *r = &ep_recs[m->rec];

	for (pp = &ep_sock_head[m->sock_id]; *pp != mi; pp = &ep_mem[*pp].sock_next)
		;
	*pp = m->sock_next;
	if (m->rec_next == mi) {
		r->head = EP_NIL;
	} else {
		ep_mem[m->rec_prev].rec_next = m->rec_next;
		ep_mem[m->rec_next].rec_prev = m->rec_prev;
		if (r->head == mi)
			r->head = m->rec_next;
	}
	__atomic_store_n(&r->nmem, r->nmem - 1, __ATOMIC_RELAXED);
	m->rec = EP_NIL;
	m->sock_next = ep_ar->mem_free;
	ep_ar->mem_free = mi;
}

/* Drop one name of record ri (lock held); the last takes the members with it. The kernel set
 * is left alone: its last fd is closing, and its entries go with it. */
static void ep_rec_put(uint32_t ri)
{
	struct ep_rec *r = &ep_recs[ri];

	if (--r->refs)
		return;
	while (r->head != EP_NIL)
		ep_member_remove(&ep_mem[r->head]);
	r->next_free = ep_ar->rec_free;
	ep_ar->rec_free = ri;
}

/* ---- the kernel set's internal entries --------------------------------------------------------
 */

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
 * The wake and link fds join the kernel set with its first accelerated member, which also
 * proves epfd an epoll fd (EBADF, EINVAL as epoll_ctl says), and leave it after the last,
 * so that a set without accelerated members waits in the kernel alone. A member may go in a
 * process that has no name for the set (its socket closed there last): the next process to
 * use the set takes them out (ep_kreg_tidy). This process's pending members keep them too, so
 * that a sleep wakes when connect accelerates one.
 */
static int ep_kreg_add(int epfd, struct ep_rec *r)
{
	int rc;

	if (r->kreg)
		return 0;
	r->wake_fd = onr_wake_fd();
	r->link_fd = onr_link_fd();
	rc = ep_internal_add(epfd, r->wake_fd);
	if (rc)
		return rc;
	rc = ep_internal_add(epfd, r->link_fd);
	if (rc) {
		ep_internal_del(epfd, r->wake_fd);
		return rc;
	}
	__atomic_store_n(&r->kreg, 1, __ATOMIC_RELAXED);
	return 0;
}

static bool ep_pending_any(uint32_t ri);

static void ep_kreg_tidy(int epfd, uint32_t ri)
{
	struct ep_rec *r = &ep_recs[ri];

	if (!r->kreg || r->nmem || ep_pending_any(ri))
		return;
	ep_internal_del(epfd, r->wake_fd);
	ep_internal_del(epfd, r->link_fd);
	__atomic_store_n(&r->kreg, 0, __ATOMIC_RELAXED);
}

/* ---- the kernel half of a listener ------------------------------------------------------ */

/* The fd entry through which this process may change m's kernel half: its fd number must
 * still name m's socket here (another process's close may have reused it). */
static const struct onr_fd *ep_member_fd(const struct ep_member *m)
{
	const struct onr_fd *e = onr_fd_get(m->fd);

	return e && e->kind == ONR_FD_STACK && e->id == m->sock_id ? e : NULL;
}

static int ep_klisten_ctl(int epfd, int op, struct ep_member *m, uint32_t events)
{
	struct epoll_event kev = {.events = events,
				  .data.u64 = EP_TAG_KLISTEN | (uint32_t)(m - ep_mem)};

	return real_epoll_ctl(epfd, op, m->fd, &kev) ? -errno : 0;
}

/* The listener became one after it was added (listen after EPOLL_CTL_ADD), or stopped. */
static void ep_klisten_sync(int epfd, struct ep_member *m)
{
	const struct onr_fd *e = ep_member_fd(m);
	bool want;

	if (!e)
		return;
	want = onr_fd_kernel_listens(e);
	if (want == (bool)m->klisten)
		return;
	if (want)
		m->klisten = ep_klisten_ctl(epfd, EPOLL_CTL_ADD, m, m->events) == 0;
	else
		m->klisten = ep_klisten_ctl(epfd, EPOLL_CTL_DEL, m, 0) != 0;
}

/* One-shot fired from the stack's half: the kernel's half must not fire again. */
static void ep_klisten_disarm(int epfd, struct ep_member *m)
{
	if (m->klisten && ep_member_fd(m))
		ep_klisten_ctl(epfd, EPOLL_CTL_MOD, m, EPOLLONESHOT);
}

/* ---- pending members ------------------------------------------------------------------- */

/* ep_mu held. */
static struct ep_pending *ep_pending_find(uint32_t ri, int fd)
{
	for (int i = 0; i < ep_npend; i++)
		if (ep_pend[i].rec == ri && ep_pend[i].gen == ep_recs[ri].gen &&
		    ep_pend[i].fd == fd)
			return &ep_pend[i];
	return NULL;
}

static void ep_pending_drop(struct ep_pending *p)
{
	*p = ep_pend[ep_npend - 1];
	__atomic_store_n(&ep_npend, ep_npend - 1, __ATOMIC_RELAXED);
}

static int ep_pending_add(uint32_t ri, int fd, const struct epoll_event *ev)
{
	if (ep_npend == ep_pend_cap) {
		int cap = ep_pend_cap ? 2 * ep_pend_cap : 16;
		struct ep_pending *p = realloc(ep_pend, (size_t)cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		ep_pend = p;
		ep_pend_cap = cap;
	}
	ep_pend[ep_npend] = (struct ep_pending){ri, ep_recs[ri].gen, fd, ev->events, ev->data};
	__atomic_store_n(&ep_npend, ep_npend + 1, __ATOMIC_RELAXED);
	return 0;
}

/*
 * A pending member whose socket is accelerated now moves to the record (the kernel socket
 * would only ever say "unconnected"). Best effort: with the arena full it stays a kernel
 * member, as it would be without onramp. Lock and ep_mu held.
 */
static void ep_pending_migrate(int epfd, uint32_t ri, const struct ep_pending *p,
			       const struct onr_fd *e)
{
	struct ep_member *m = ep_member_find(ri, e->id, p->fd);

	if (m)
		return;
	if (ep_kreg_add(epfd, &ep_recs[ri]))
		return;
	m = ep_member_add(ri, e->id, p->fd, p->events, p->data);
	if (!m)
		return;
	real_epoll_ctl(epfd, EPOLL_CTL_DEL, p->fd, NULL);
	ep_klisten_sync(epfd, m);
}

/* Pending members of record ri whose socket was decided: to the stack, or left to the kernel.
 * Only fd, when fd >= 0. Lock held. */
static void ep_pending_resolve(int epfd, uint32_t ri, int fd)
{
	pthread_mutex_lock(&ep_mu);
	for (int i = ep_npend - 1; i >= 0; i--) {
		struct ep_pending *p = &ep_pend[i];
		const struct onr_fd *e;

		if (p->rec != ri || (fd >= 0 && p->fd != fd))
			continue;
		if (p->gen != ep_recs[ri].gen) { /* its set is gone */
			ep_pending_drop(p);
			continue;
		}
		e = onr_fd_get(p->fd);
		if (e && e->kind == ONR_FD_PENDING)
			continue;
		if (e && e->kind == ONR_FD_STACK)
			ep_pending_migrate(epfd, ri, p, e);
		ep_pending_drop(p);
	}
	pthread_mutex_unlock(&ep_mu);
}

/* Lock held. */
static bool ep_pending_any(uint32_t ri)
{
	bool any = false;

	if (!__atomic_load_n(&ep_npend, __ATOMIC_RELAXED))
		return false;
	pthread_mutex_lock(&ep_mu);
	for (int i = 0; i < ep_npend && !any; i++)
		any = ep_pend[i].rec == ri;
	pthread_mutex_unlock(&ep_mu);
	return any;
}

/* ---- epoll_ctl ---------------------------------------------------------------------------- */

/* Lock held. *ri: epfd's record, made here when it has none. */
static int ep_ctl_add(int epfd, uint32_t *ri, int fd, const struct epoll_event *ev,
		      const struct onr_fd *e)
{
	uint64_t prev = ep_dir_load(epfd);
	struct ep_member *m;
	struct ep_rec *r;
	bool made = false;
	int rc;

	if (*ri == EP_NIL) {
		*ri = ep_rec_make(epfd);
		if (*ri == EP_NIL)
			return -ENOMEM;
		made = true;
	}
	r = &ep_recs[*ri];
	rc = ep_kreg_add(epfd, r);
	if (rc)
		goto out_unmake;
	m = ep_member_add(*ri, e->id, fd, ev->events, ev->data);
	if (!m) {
		rc = -ENOSPC;
		goto out_tidy;
	}
	if (onr_fd_kernel_listens(e)) {
		rc = ep_klisten_ctl(epfd, EPOLL_CTL_ADD, m, ev->events);
		if (rc) {
			ep_member_remove(m);
			goto out_tidy;
		}
		m->klisten = 1;
	}
	return 0;

out_tidy:
	ep_kreg_tidy(epfd, *ri);
out_unmake:
	if (made) { /* epfd may be no epoll fd at all: it names nothing, as before */
		ep_rec_put(*ri);
		ep_dir_store(epfd, prev);
	}
	return rc;
}

static int ep_ctl_mod(int epfd, struct ep_member *m, const struct epoll_event *ev)
{
	int rc;

	if (m->events & EPOLLEXCLUSIVE)
		return -EINVAL;
	if (m->klisten) {
		rc = ep_klisten_ctl(epfd, EPOLL_CTL_MOD, m, ev->events);
		if (rc)
			return rc;
	}
	m->events = ev->events;
	m->data = ev->data.u64;
	m->armed = 1;
	m->seen = 0; /* Linux queues the item again when it is ready at MOD */
	return 0;
}

/*
 * MOD or DEL of an accelerated fd this record does not know: it may sit in the kernel set,
 * added before we could see it (another path, an fd dup'd from it). Taking it out of the
 * kernel set finds out, and proves epfd valid when it is not there (ENOENT, EBADF, EINVAL).
 */
static int ep_ctl_unknown(int epfd, uint32_t *ri, int op, int fd, const struct epoll_event *ev,
			  const struct onr_fd *e)
{
	if (real_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL))
		return -errno;
	return op == EPOLL_CTL_DEL ? 0 : ep_ctl_add(epfd, ri, fd, ev, e);
}

/* Lock held. */
static int ep_ctl_locked(int epfd, int op, int fd, const struct epoll_event *ev,
			 const struct onr_fd *e)
{
	uint32_t ri = ep_rec_of(epfd);
	struct ep_member *m = NULL;

	if (ri != EP_NIL) {
		if (__atomic_load_n(&ep_npend, __ATOMIC_RELAXED))
			ep_pending_resolve(epfd, ri, fd);
		m = ep_member_find(ri, e->id, fd);
	}
	if (op == EPOLL_CTL_ADD)
		return m ? -EEXIST : ep_ctl_add(epfd, &ri, fd, ev, e);
	if (!m)
		return ep_ctl_unknown(epfd, &ri, op, fd, ev, e);
	if (op == EPOLL_CTL_MOD)
		return ep_ctl_mod(epfd, m, ev);
	if (m->klisten)
		ep_klisten_ctl(epfd, EPOLL_CTL_DEL, m, 0);
	ep_member_remove(m);
	ep_kreg_tidy(epfd, ri);
	return 0;
}

/* Making a record changes the directory, which fork copies: that must not cross a fork's
 * counting of names (the fd table lock, taken before the stack lock). */
static bool ep_may_make(int epfd)
{
	if (ep_rec_of(epfd) != EP_NIL)
		return false;
	onr_fds_lock();
	return true;
}

static int ep_ctl_stack(int epfd, int op, int fd, const struct epoll_event *ev)
{
	const struct onr_fd *e;
	bool fds;
	int rc;

	if (op != EPOLL_CTL_DEL && !ev)
		return -EFAULT;
	if (op != EPOLL_CTL_ADD && op != EPOLL_CTL_MOD && op != EPOLL_CTL_DEL)
		return -EINVAL;
	if (op != EPOLL_CTL_DEL && (ev->events & EPOLLEXCLUSIVE) &&
	    (op == EPOLL_CTL_MOD || (ev->events & ~EP_EXCLUSIVE_OK)))
		return -EINVAL;
	if (!ep_ar)
		return -ENOMEM;
	fds = ep_may_make(epfd);
	rc = onr_lock();
	if (rc == 0) {
		e = onr_fd_get(fd);
		/* closed by another thread meanwhile: as if it had been before the call */
		rc = e && e->kind == ONR_FD_STACK ? ep_ctl_locked(epfd, op, fd, ev, e) : -EBADF;
		onr_unlock();
	}
	if (fds)
		onr_fds_unlock();
	return rc;
}

/* An undecided socket goes to the kernel set as it is; this process remembers it, so that it
 * moves to the stack's half when connect or listen accelerates it. Best effort: without
 * room it stays a kernel member, as it would be without onramp. */
static void ep_ctl_pending(int epfd, int op, int fd, const struct epoll_event *ev)
{
	struct ep_pending *p;
	uint32_t ri;
	bool fds;

	if (!ep_ar || !onr_stack_if_ready())
		return;
	fds = op == EPOLL_CTL_ADD && ep_may_make(epfd);
	if (onr_lock() == 0) {
		ri = ep_rec_of(epfd);
		if (ri == EP_NIL && op == EPOLL_CTL_ADD)
			ri = ep_rec_make(epfd);
		if (ri != EP_NIL) {
			pthread_mutex_lock(&ep_mu);
			p = ep_pending_find(ri, fd);
			if (op == EPOLL_CTL_ADD && !p && ep_pending_add(ri, fd, ev) == 0)
				ep_kreg_add(epfd, &ep_recs[ri]);
			else if (op == EPOLL_CTL_MOD && p)
				*p = (struct ep_pending){p->rec, p->gen, fd, ev->events, ev->data};
			else if (op == EPOLL_CTL_DEL && p)
				ep_pending_drop(p);
			pthread_mutex_unlock(&ep_mu);
		}
		onr_unlock();
	}
	if (fds)
		onr_fds_unlock();
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
	rc = ep_ctl_stack(epfd, op, fd, ev);
	if (rc == 0)
		errno = saved;
	return (int)onr_ret(rc);
}

/* ---- names: create, dup, close, fork, exit ------------------------------------------------ */

/* A new epoll fd: whatever its number named before goes (a close we did not see), and it is
 * known, so that a fork shares it even before it has accelerated members. */
static int ep_created(int fd)
{
	if (fd >= 0) {
		onr_epoll_closed(fd);
		ep_dir_store(fd, EP_DIR_KNOWN);
	}
	return fd;
}

EXPORT int epoll_create(int size)
{
	ONR_REAL_READY();
	return ep_created(real_epoll_create(size));
}

EXPORT int epoll_create1(int flags)
{
	ONR_REAL_READY();
	return ep_created(real_epoll_create1(flags));
}

void onr_epoll_closed(int epfd)
{
	uint64_t v = ep_dir_load(epfd);
	uint32_t ri;

	if (!v)
		return;
	if (v == EP_DIR_KNOWN || !ep_ar || onr_lock() != 0) {
		ep_dir_store(epfd, 0);
		return;
	}
	ri = ep_rec_of_val(ep_dir_load(epfd));
	ep_dir_store(epfd, 0);
	if (ri != EP_NIL)
		ep_rec_put(ri);
	onr_unlock();
}

int onr_epoll_dup(int fd, int fd2)
{
	int saved = errno;
	uint64_t v;
	uint32_t ri;

	if (fd2 < 0 || fd2 == fd || !(v = ep_dir_load(fd)))
		return fd2;
	if (!ep_ar || !onr_stack_if_ready()) {
		ep_dir_store(fd2, v);
		return fd2;
	}
	onr_fds_lock();
	if (onr_lock() == 0) {
		/* both names must reach one record, not make one each later */
		ri = ep_rec_of(fd);
		if (ri == EP_NIL && ep_dir_load(fd) == EP_DIR_KNOWN)
			ri = ep_rec_make(fd);
		if (ri != EP_NIL && ep_dir_store(fd2, ep_dir_val(ri)))
			ep_recs[ri].refs++;
		onr_unlock();
	}
	onr_fds_unlock();
	errno = saved;
	return fd2;
}

/*
 * Linux drops a closed file from every epoll set when its last fd goes: for an accelerated
 * socket that is when its refs reach 0 (onr_epoll_sock_closed). Here only this process's
 * pending members of fd go; the kernel takes the kernel socket out itself.
 */
void onr_epoll_forget(int fd)
{
	if (!__atomic_load_n(&ep_npend, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&ep_mu);
	for (int i = ep_npend - 1; i >= 0; i--)
		if (ep_pend[i].fd == fd)
			ep_pending_drop(&ep_pend[i]);
	pthread_mutex_unlock(&ep_mu);
}

void onr_epoll_sock_closed(uint32_t sock_id)
{
	if (!ep_ar || sock_id >= ep_ar->n_socks)
		return;
	while (ep_sock_head[sock_id] != EP_NIL)
		ep_member_remove(&ep_mem[ep_sock_head[sock_id]]);
}

/* Calls fn for every epoll fd this process knows (fork and exit: not a hot path). */
static void ep_dir_each(void (*fn)(int epfd, uint64_t v, int arg), int arg)
{
	for (int ci = 0; ci < EP_DIR_N; ci++)
		for (int j = 0; ep_dir[ci] && j < EP_DIR_CHUNK; j++)
			if (ep_dir[ci][j])
				fn(ci * EP_DIR_CHUNK + j, ep_dir[ci][j], arg);
}

static void ep_fork_name(int epfd, uint64_t v, int delta)
{
	uint32_t ri = ep_rec_of_val(v);

	/* shared from now on: one record for both, made before they can diverge */
	if (v == EP_DIR_KNOWN && delta > 0)
		ri = ep_rec_make(epfd);
	if (ri != EP_NIL)
		ep_recs[ri].refs = (uint32_t)((int)ep_recs[ri].refs + delta);
}

void onr_epoll_fork(int delta)
{
	if (ep_ar)
		ep_dir_each(ep_fork_name, delta);
}

static void ep_exit_name(int epfd, uint64_t v, int arg)
{
	uint32_t ri = ep_rec_of_val(v);

	(void)arg;
	ep_dir_store(epfd, 0);
	if (ri != EP_NIL)
		ep_rec_put(ri);
}

void onr_epoll_exit(void)
{
	if (ep_ar)
		ep_dir_each(ep_exit_name, 0);
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

/* A view of stack socket id for onr_fd_revents and onr_fd_wake_seq, which read only the id:
 * a member's readiness is its socket's, whichever fds name it in this process. */
static struct onr_fd ep_sock_view(uint32_t id)
{
	return (struct onr_fd){.kind = ONR_FD_STACK, .id = id};
}

/* The stack's half of a member: what to report now, or 0. */
static uint32_t ep_member_ready(int epfd, struct ep_member *m, uint32_t *seq)
{
	struct onr_fd view = ep_sock_view(m->sock_id);
	uint32_t rev;

	ep_klisten_sync(epfd, m);
	/* poll bits are epoll bits on Linux (EPOLLIN == POLLIN, ...) */
	rev = (uint32_t)(uint16_t)onr_fd_revents(&view) &
	      ((m->events & ~EP_FLAGS) | EPOLLERR | EPOLLHUP);
	if (!rev)
		return 0;
	*seq = onr_fd_wake_seq(&view);
	return rev;
}

static void ep_report(struct ep_wait *ew, struct ep_member *m, uint32_t rev, uint32_t seq)
{
	ew->ev[ew->nout] = (struct epoll_event){.events = rev, .data.u64 = m->data};
	m->out_call = ew->call;
	m->out_idx = ew->nout++;
	m->seen = 1;
	m->seen_seq = seq;
	if (m->events & EPOLLONESHOT) {
		m->armed = 0;
		ep_klisten_disarm(ew->epfd, m);
	}
}

/* One pass over the ring from its head; when the events fill up, the head moves past the
 * last one reported, so that a busy socket starves no other. */
static int ep_scan_members(struct ep_wait *ew, struct ep_rec *r)
{
	uint32_t mi = r->head, n = r->nmem;
	int found = 0;

	for (uint32_t j = 0; j < n && ew->nout < ew->max; j++) {
		struct ep_member *m = &ep_mem[mi];
		uint32_t rev, seq = 0;

		mi = m->rec_next;
		if (!m->armed && m->out_call != ew->call)
			continue;
		rev = ep_member_ready(ew->epfd, m, &seq);
		if (!rev)
			continue;
		if (m->out_call == ew->call) { /* its kernel half came first: one event */
			ew->ev[m->out_idx].events |= rev;
			continue;
		}
		if ((m->events & EPOLLET) && m->seen && m->seen_seq == seq)
			continue;
		ep_report(ew, m, rev, seq);
		found++;
		if (ew->nout == ew->max)
			r->head = mi;
	}
	return found;
}

/* Lock held (onr_wait's scan). */
static int ep_wait_scan(struct onr_waiter *w, bool keep)
{
	struct ep_wait *ew = (struct ep_wait *)w;
	uint32_t ri = ep_rec_of(ew->epfd);
	struct ep_rec *r;

	if (!keep)
		ew->nout = 0;
	if (ri == EP_NIL)
		return 0;
	r = &ep_recs[ri];
	if (__atomic_load_n(&ep_npend, __ATOMIC_RELAXED))
		ep_pending_resolve(ew->epfd, ri, -1);
	ep_kreg_tidy(ew->epfd, ri);
	return r->nmem ? ep_scan_members(ew, r) : 0;
}

/* A listener's kernel half: merged into its stack half's event, or reported with the
 * member's data. Lock held. */
static void ep_klisten_event(struct ep_wait *ew, uint32_t ri, uint32_t mi, uint32_t kev, int *out)
{
	struct ep_member *m;

	if (ri == EP_NIL || mi >= ep_ar->n_members)
		return;
	m = &ep_mem[mi];
	if (m->rec != ri || !m->klisten)
		return;
	if (m->out_call == ew->call) {
		ew->ev[m->out_idx].events |= kev;
		return;
	}
	if (!m->armed)
		return;
	ew->ev[*out] = (struct epoll_event){.events = kev, .data.u64 = m->data};
	m->out_call = ew->call;
	m->out_idx = (*out)++;
	if (m->events & EPOLLONESHOT)
		m->armed = 0; /* the kernel disarmed its half itself */
}

/* The kernel's events at ev[from, from + n): internal ones dropped, a listener's kernel
 * half translated (under the lock, only when one came); the rest are the user's. Returns
 * how many remain. */
static int ep_kernel_filter(struct ep_wait *ew, int from, int n)
{
	bool klisten = false, locked;
	int out = from;

	for (int i = from; i < from + n; i++)
		klisten |= (ew->ev[i].data.u64 & EP_TAG_MASK) == EP_TAG_KLISTEN;
	locked = klisten && onr_lock() == 0;
	for (int i = from; i < from + n; i++) {
		struct epoll_event k = ew->ev[i];
		uint64_t tag = k.data.u64 & EP_TAG_MASK;

		if (tag == EP_TAG_INTERNAL)
			continue;
		if (tag == EP_TAG_KLISTEN) {
			if (locked)
				ep_klisten_event(ew, ep_rec_of(ew->epfd), (uint32_t)k.data.u64,
						 k.events, &out);
			continue;
		}
		ew->ev[out++] = k;
	}
	if (locked)
		onr_unlock();
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
	ew.call = __atomic_add_fetch(&ep_ar->calls, 1, __ATOMIC_RELAXED);
	rc = onr_wait(&ew.w, deadline_ns, mask);
	if (rc < 0)
		return (int)onr_ret(rc);
	errno = saved;
	return ew.nout;
}

/* Whether a wait on epfd must look at the stack: its set has accelerated members, internal
 * entries to take out, or this process has pending members (rare: any set of it counts).
 * Plain loads and no lock (a signal handler may wait too): a set without accelerated
 * members costs epoll_wait nothing. */
static bool ep_wants_stack(int epfd)
{
	uint32_t ri = ep_rec_of(epfd);

	if (ri == EP_NIL)
		return false;
	return __atomic_load_n(&ep_recs[ri].nmem, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&ep_recs[ri].kreg, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&ep_npend, __ATOMIC_RELAXED);
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
	if (!ep_wants_stack(epfd)) {
		if (!onr_stack_if_ready())
			return real_epoll_wait(epfd, ev, max, ms);
		return ep_kernel_wait(epfd, ev, max, onr_deadline_ms(ms), NULL);
	}
	return ep_wait_mixed(epfd, ev, max, onr_deadline_ms(ms), NULL);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int ms, const sigset_t *m)
{
	ONR_REAL_READY();
	if (!ep_wants_stack(epfd)) {
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
	bool stack;
	int rc;

	ONR_REAL_READY();
	stack = ep_wants_stack(epfd);
	if (!stack && !onr_stack_if_ready())
		return real_epoll_pwait2(epfd, ev, max, t, m);
	rc = onr_deadline_ts(t, &deadline);
	if (rc)
		return (int)onr_ret(rc);
	if (!stack)
		return ep_kernel_wait(epfd, ev, max, deadline, m);
	return ep_wait_mixed(epfd, ev, max, deadline, m);
}
