/*
 * shim/intercept/proc.c — the process side of acceleration (design §1, §8): starting the
 * stack on first need or falling back to the kernel, the stack lock, the helper thread that
 * keeps the stack moving, the wake fd of sleeping pollers, fork, exit, and signal handlers
 * deferred while the lock is held.
 *
 * The runtime (struct stack_rt: the stack handle, its link, clock and control plane) lives in
 * a shared anonymous mapping together with the wake fd's state, so that after fork parent
 * and child drive one stack through the same link state (design §8: fork shares the stack).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "intercept.h"
#include "shmem.h"
#include "tcp.h"

extern char **environ;

#define HELPER_MAX_SLEEP_NS 10000000 /* the stack's timer tick */
#define EXIT_LINGER_NS 2000000000    /* the last process gives closing connections this long */
#define ONR_MAX_PROCS 256	     /* processes sharing one stack that exit tracks */

/* What the processes of one stack share (a MAP_SHARED mapping, inherited by fork). */
struct onr_shared {
	struct stack_rt rt;
	uint32_t armed;	 /* the wake fd was written and not drained yet */
	int wake_fd;	 /* eventfd: readable while armed */
	/* The processes of the family (the creator and its forked descendants), for the last
	 * one out to know it is last. 0: a free slot. */
	pid_t pids[ONR_MAX_PROCS];
	/* pids[i] is between exec and its new image taking the stack over (it maps nothing
	 * meanwhile, but is not gone) */
	uint8_t execing[ONR_MAX_PROCS];
	uint64_t region_ino; /* the region file, as /proc/<pid>/maps names it */
	uint64_t image_id;   /* the image whose parts of rt are in place (stack_rt_image) */
};

static struct onr_shared *sh;
/* This image's parts of the runtime, put in place by lock_raw when another image (a process
 * of the family that exec'd) held the lock last; forked children share the image. */
static struct stack_rt_image image;
static uint64_t image_id;
static enum onr_proc_state proc_state;
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_level = 1;
static int64_t spin_ns;
static struct pkt_lock_ops lock_ops;

/* The helper thread of this process (a forked child starts its own on first lock). */
static bool helper_running;
static bool helper_stop;
static pthread_t helper_tid;

/* Depth of the stack lock held by this thread, and signals that arrived meanwhile. */
static __thread int in_stack;
static __thread uint64_t sig_deferred;
static __thread siginfo_t sig_info[64];

/* fd table changes that must not cross a fork (close, dup, fork's reference counting). */
static pthread_mutex_t fds_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- logging -------------------------------------------------------------------------- */

void onr_log(int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	if (level > log_level)
		return;
	n = snprintf(line, sizeof(line), "onramp[%d]: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	if (n < (int)sizeof(line) - 1)
		line[n++] = '\n';
	ONR_REAL_READY();
	(void)!real_write(2, line, (size_t)n);
}

int64_t onr_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t onr_spin_ns(void)
{
	return spin_ns;
}

/* ---- the lock and deferred signals ------------------------------------------------------ */

static struct sigaction user_act[65]; /* what the application installed, by signal */
static bool user_trampolined[65];

/* Handlers run by this thread: a wait that sees it change returns EINTR, even when the
 * handler ran deferred (at onr_unlock) or while the wait was spinning, not in a syscall. */
static __thread uint64_t sig_runs;
/* Of those, the handlers installed without SA_RESTART: a call the kernel would restart
 * after the others must return EINTR after one of these. */
static __thread uint64_t sig_interrupts;

uint64_t onr_signal_count(void)
{
	return sig_runs;
}

uint64_t onr_signal_interrupts(void)
{
	return sig_interrupts;
}

static void sig_call_user(int sig, siginfo_t *si, void *uc)
{
	const struct sigaction *a = &user_act[sig];

	sig_runs++;
	if (!(a->sa_flags & SA_RESTART))
		sig_interrupts++;
	if (a->sa_flags & SA_SIGINFO)
		a->sa_sigaction(sig, si, uc);
	else if (a->sa_handler != SIG_IGN && a->sa_handler != SIG_DFL)
		a->sa_handler(sig);
}

/* Signals raised by the faulting instruction itself cannot wait: run them at once. */
static bool sig_synchronous(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
	       sig == SIGTRAP || sig == SIGSYS || sig == SIGABRT;
}

static void sig_trampoline(int sig, siginfo_t *si, void *uc)
{
	if (in_stack && !sig_synchronous(sig) && sig < 64) {
		sig_deferred |= 1ull << sig;
		sig_info[sig] = *si;
		return;
	}
	sig_call_user(sig, si, uc);
}

static void sig_run_deferred(void)
{
	while (sig_deferred) {
		int sig = __builtin_ctzll(sig_deferred);

		sig_deferred &= ~(1ull << sig);
		sig_call_user(sig, &sig_info[sig], NULL);
	}
}

static void helper_start(void);

static void proc_notify(void *arg);

static int lock_raw(void *arg)
{
	int rc;

	(void)arg;
	in_stack++;
	rc = stack_region_lock(&sh->rt.region);
	if (rc == 0 && __builtin_expect(sh->image_id != image_id, 0)) {
		stack_rt_image_apply(&sh->rt, &image);
		sh->rt.stack.notify = proc_notify;
		sh->rt.stack.notify_arg = sh;
		sh->image_id = image_id;
	}
	return rc;
}

static void unlock_raw(void *arg)
{
	(void)arg;
	stack_region_unlock(&sh->rt.region);
	if (--in_stack == 0 && sig_deferred)
		sig_run_deferred();
}

int onr_lock(void)
{
	int rc;

	if (!__atomic_load_n(&helper_running, __ATOMIC_ACQUIRE))
		helper_start();
	rc = lock_raw(NULL);
	if (rc)
		in_stack--;
	return rc;
}

void onr_unlock(void)
{
	unlock_raw(NULL);
}

const struct pkt_lock_ops *onr_lock_ops(void)
{
	return &lock_ops;
}

__attribute__((visibility("default"))) int sigaction(int sig, const struct sigaction *act,
						     struct sigaction *old)
{
	struct sigaction mine, prev_user;
	bool was = false;
	int rc;

	ONR_REAL_READY();
	if (sig <= 0 || sig > 64)
		return real_sigaction(sig, act, old);
	was = user_trampolined[sig];
	prev_user = user_act[sig];
	if (act && act->sa_handler != SIG_IGN && act->sa_handler != SIG_DFL) {
		mine = *act;
		mine.sa_flags |= SA_SIGINFO;
		mine.sa_sigaction = sig_trampoline;
		user_act[sig] = *act;
		rc = real_sigaction(sig, &mine, old);
		if (rc == 0)
			user_trampolined[sig] = true;
		else
			user_act[sig] = prev_user;
	} else {
		rc = real_sigaction(sig, act, old);
		if (rc == 0 && act)
			user_trampolined[sig] = false;
	}
	if (rc == 0 && old && was && old->sa_sigaction == sig_trampoline)
		*old = prev_user;
	return rc;
}

__attribute__((visibility("default"))) sighandler_t signal(int sig, sighandler_t h)
{
	struct sigaction act, old;

	/* glibc's signal() has BSD semantics: restart, handler stays installed */
	memset(&act, 0, sizeof(act));
	act.sa_handler = h;
	act.sa_flags = SA_RESTART;
	sigemptyset(&act.sa_mask);
	sigaddset(&act.sa_mask, sig > 0 && sig < 65 ? sig : 0);
	if (sigaction(sig, &act, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

/* ---- pollers and their wake fd --------------------------------------------------------- */

static void proc_notify(void *arg)
{
	struct onr_shared *s = arg;
	uint64_t one = 1;

	if (!__atomic_exchange_n(&s->armed, 1, __ATOMIC_ACQ_REL))
		(void)!real_write(s->wake_fd, &one, sizeof(one));
}

void onr_poller_enter(void)
{
	sh->rt.stack.st->pollers++;
}

void onr_poller_leave(void)
{
	uint64_t v;

	if (--sh->rt.stack.st->pollers == 0 && __atomic_load_n(&sh->armed, __ATOMIC_ACQUIRE)) {
		(void)!real_read(sh->wake_fd, &v, sizeof(v));
		__atomic_store_n(&sh->armed, 0, __ATOMIC_RELEASE);
	}
}

int onr_wake_fd(void)
{
	return sh ? sh->wake_fd : -1;
}

int onr_link_fd(void)
{
	return sh ? sh->rt.stack.link->wait_fd : -1;
}

short onr_fd_revents(const struct onr_fd *e)
{
	struct stack *s = &sh->rt.stack;
	const struct stack_sock *so = sock_get(s, e->id);
	unsigned ev = sock_events(s, e->id);
	short r = 0;

	if (ev & SOCK_EV_IN)
		r |= POLLIN | POLLRDNORM;
	if (ev & SOCK_EV_PRI)
		r |= POLLPRI;
	if (ev & SOCK_EV_OUT)
		r |= POLLOUT | POLLWRNORM;
	if (ev & SOCK_EV_ERR)
		r |= POLLERR;
	if (ev & SOCK_EV_HUP)
		r |= POLLHUP;
	if (so && so->type == SOCK_T_TCP &&
	    (so->state == TCPS_CLOSE_WAIT || so->state == TCPS_LAST_ACK ||
	     so->state == TCPS_CLOSING || so->state == TCPS_TIME_WAIT || (so->shut & 1)))
		r |= POLLRDHUP | POLLIN | POLLRDNORM;
	return r;
}

uint32_t onr_fd_wake_seq(const struct onr_fd *e)
{
	const struct stack_sock *so = sock_get(&sh->rt.stack, e->id);

	return so ? __atomic_load_n(&so->wake_seq, __ATOMIC_ACQUIRE) : 0;
}

/* ---- the helper thread ---------------------------------------------------------------- */

/* Keeps the stack moving while the application computes or sleeps: receives, acknowledges,
 * runs timers. It sleeps on the link until frames come or the next timer tick. */
static void *helper_main(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&helper_stop, __ATOMIC_ACQUIRE)) {
		if (lock_raw(NULL) == 0) {
			stack_rt_poll(&sh->rt);
			unlock_raw(NULL);
		} else {
			in_stack--;
		}
		stack_rt_wait(&sh->rt, HELPER_MAX_SLEEP_NS);
	}
	return NULL;
}

/* Stop this process's helper thread and wait for it (exit, exec); a later onr_lock starts
 * a new one. */
static void helper_stop_join(void)
{
	if (helper_running) {
		__atomic_store_n(&helper_stop, true, __ATOMIC_RELEASE);
		pthread_join(helper_tid, NULL);
		helper_running = false;
	}
	__atomic_store_n(&helper_stop, false, __ATOMIC_RELEASE);
}

static void helper_start(void)
{
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	sigset_t all, old;

	pthread_mutex_lock(&m);
	if (!helper_running && sh) {
		/* signals are the application's: the helper never takes one */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		if (pthread_create(&helper_tid, NULL, helper_main, NULL) == 0)
			__atomic_store_n(&helper_running, true, __ATOMIC_RELEASE);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	pthread_mutex_unlock(&m);
}

/* ---- the stack's own fds ---------------------------------------------------------------- */

/*
 * The fds the stack opened for itself (region, link device, io_uring, XSK, BPF maps and
 * programs, eventfds, netlink). A program that closes every fd it did not open (a daemon
 * detaching, a child before exec) would otherwise cut the stack off from its link: close
 * answers EBADF for them, as for an fd that is not open, close_range steps around them, and
 * dup2/dup3 onto one fails with EBUSY. They are found as the fds the start opened, each
 * checked to be of a kind the stack opens, so that a file another thread opened meanwhile
 * is not taken for one.
 */
#define ONR_INTERNAL_MAX 64

static int internal_fd[ONR_INTERNAL_MAX];
static int n_internal; /* set once the start succeeded; 0 again before the stack closes */

bool onr_fd_internal(int fd)
{
	int n = __atomic_load_n(&n_internal, __ATOMIC_ACQUIRE);

	for (int i = 0; i < n; i++)
		if (internal_fd[i] == fd)
			return true;
	return false;
}

bool onr_range_internal(unsigned lo, unsigned hi)
{
	int n = __atomic_load_n(&n_internal, __ATOMIC_ACQUIRE);

	for (int i = 0; i < n; i++)
		if ((unsigned)internal_fd[i] >= lo && (unsigned)internal_fd[i] <= hi)
			return true;
	return false;
}

bool onr_fd_internal_close(int fd)
{
	int n = __atomic_load_n(&n_internal, __ATOMIC_ACQUIRE);

	if (!in_stack)
		return false;
	/* the stack's own code, under its lock: the number is free again once closed */
	for (int i = 0; i < n; i++)
		if (internal_fd[i] == fd)
			__atomic_store_n(&internal_fd[i], -1, __ATOMIC_RELEASE);
	return true;
}

/* The open fds, in a malloc'd array (the start is not a hot path); NULL when unreadable. */
static int *fds_open(int *count)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int *v = NULL, n = 0, cap = 0;

	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		if (*end || end == de->d_name || fd == dirfd(d))
			continue;
		if (n == cap) {
			int *nv = realloc(v, (size_t)(cap = cap ? 2 * cap : 64) * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		v[n++] = (int)fd;
	}
	closedir(d);
	*count = n;
	return v ? v : calloc(1, sizeof(int));
}

/* Whether fd is of a kind the stack opens for itself. */
static bool fd_of_stack_kind(int fd)
{
	static const char *const kinds[] = {"anon_inode:[eventfd]", "anon_inode:[io_uring]",
					    "anon_inode:bpf", "/dev/net/tun", "/run/onramp/",
					    "/memfd:onramp-"};
	char path[64], target[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	/* the region: named as it was opened, before its rename into place */
	if (!strncmp(target, "/dev/shm/", 9) && strstr(target, "onramp-"))
		return true;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strncmp(target, kinds[i], strlen(kinds[i])))
			return true;
	if (!strncmp(target, "socket:", 7)) {
		int dom = 0;
		socklen_t len = sizeof(dom);
		if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0)
			return dom == AF_NETLINK || dom == AF_XDP;
	}
	return false;
}

static bool in_list(const int *v, int n, int fd)
{
	for (int i = 0; i < n; i++)
		if (v[i] == fd)
			return true;
	return false;
}

static void internal_add(int fd)
{
	int n = n_internal;

	if (n < ONR_INTERNAL_MAX && !onr_fd_internal(fd)) {
		internal_fd[n] = fd;
		__atomic_store_n(&n_internal, n + 1, __ATOMIC_RELEASE);
	}
}

/* Record as the stack's the fds open now that were not in before[] and are of its kinds. */
static void internal_record(const int *before, int n_before)
{
	int n_now = 0;
	int *now = fds_open(&n_now);

	if (now && before)
		for (int i = 0; i < n_now; i++)
			if (!in_list(before, n_before, now[i]) && fd_of_stack_kind(now[i]))
				internal_add(now[i]);
	onr_log(4, "the stack holds %d fds of its own", n_internal);
	free(now);
}

/* fds 0-2 closed when the stack starts would become the stack's, and a daemon's dup2 of
 * /dev/null onto them would then fail: hold them with /dev/null while the stack starts. */
static unsigned std_fds_hold(void)
{
	unsigned held = 0;

	for (int fd = 0; fd < 3; fd++)
		if (real_fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
			int n = open("/dev/null", O_RDWR);
			if (n == fd)
				held |= 1u << fd;
			else if (n >= 0)
				real_close(n);
		}
	return held;
}

static void std_fds_release(unsigned held)
{
	for (int fd = 0; fd < 3; fd++)
		if (held & (1u << fd))
			real_close(fd);
}

/* An id for this image's parts (stack_rt_image): random, so no two images share one. */
static uint64_t image_id_new(void)
{
	uint64_t id = 0;

	while (!id && getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id))
		;
	return id ? id : (uint64_t)onr_now_ns();
}

/* ---- the arena ------------------------------------------------------------------------- */

/*
 * The state the family shares (struct onr_shared, with the runtime, and the links' state
 * through shmem.h) lives in one memfd mapping rather than anonymous memory: a process that
 * execs hands the fd to its new image, which maps it again at the same address, so every
 * pointer inside stays true (design §8: exec keeps the stack).
 */
#define ARENA_MAGIC 0x616e657261726e6full /* "onrarena" */
#define ARENA_FIXED (1u << 20)		  /* besides the links' per-buffer bookkeeping */

struct onr_arena {
	uint64_t magic;
	void *base; /* where every process of the family maps it */
	size_t size;
	struct onr_shared *sh;
	struct link_arena alloc;
};

static struct onr_arena *arena;
static int arena_fd = -1;

/* A start that failed gives the arena back (sh with it). */
static void arena_destroy(void)
{
	link_arena_use(NULL);
	if (arena)
		munmap(arena, arena->size);
	if (arena_fd >= 0)
		real_close(arena_fd);
	arena = NULL;
	arena_fd = -1;
	sh = NULL;
}

/*
 * Where a stack's arena and region go: a new image after exec must find their addresses
 * free, and a program image loads near the top of the address space (shared objects, mmap
 * area) or around its executable (0x55..., or low for a non-PIE one, with its heap after it).
 * 0x2000_0000_0000 to 0x2800_0000_0000 is neither (and above a sanitizer's shadow memory):
 * a random 2 GiB slot there holds the arena, and the region 1 GiB in.
 */
#define PLACE_LOW   0x200000000000ull
#define PLACE_SLOT  (1ull << 31)
#define PLACE_SLOTS 4096u
#define PLACE_TRIES 8

static void *arena_map(int fd, size_t size)
{
	for (int i = 0; i < PLACE_TRIES; i++) {
		uint64_t r = image_id_new();
		void *want = (void *)(uintptr_t)(PLACE_LOW + (r % PLACE_SLOTS) * PLACE_SLOT);
		void *p = mmap(want, size, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);

		if (p == want)
			return p;
		if (p != MAP_FAILED)
			munmap(p, size); /* a kernel that took it for a hint */
	}
	return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
}

/* The arena for a stack of cfg (the links take 9 bytes per buffer at most), with sh in it;
 * the region is to go 1 GiB after it. */
static struct onr_shared *arena_create(const struct onr_config *cfg)
{
	size_t size = ARENA_FIXED + sizeof(struct onr_shared) + 16 * (size_t)cfg->max_packets;
	struct onr_arena *a;
	int fd = memfd_create("onramp-arena", MFD_CLOEXEC);

	if (fd < 0)
		return NULL;
	size = (size + 4095) & ~(size_t)4095;
	a = ftruncate(fd, (off_t)size) == 0 ? arena_map(fd, size) : MAP_FAILED;
	if (a == MAP_FAILED) {
		real_close(fd);
		return NULL;
	}
	stack_region_place((uint8_t *)a + (1u << 30));
	*a = (struct onr_arena){ARENA_MAGIC, a, size, NULL, {a, size, sizeof(*a)}};
	link_arena_use(&a->alloc);
	a->sh = link_shalloc(sizeof(*a->sh));
	arena = a;
	arena_fd = fd;
	return a->sh;
}

/* ---- start, fallback, exit ------------------------------------------------------------ */

struct start_report {
	char first[256];
	unsigned errors;
};

static void start_report_fn(void *arg, enum env_severity sev, const char *msg)
{
	struct start_report *r = arg;

	if (sev == ENV_ERROR) {
		if (!r->errors++)
			snprintf(r->first, sizeof(r->first), "%s", msg);
	} else {
		onr_log(2, "%s", msg);
	}
}

/* Acceleration cannot start: say why once, then run on the kernel or exit (EF_NO_FAIL). */
static void fallback(bool no_fail, const char *why)
{
	if (!no_fail) {
		onr_log(0, "%s (EF_NO_FAIL=0: exiting)", why);
		exit(1);
	}
	onr_log(1, "%s; running on the kernel stack (EF_NO_FAIL=1)", why);
	__atomic_store_n(&proc_state, ONR_PROC_DISABLED, __ATOMIC_RELEASE);
}

static void proc_exit(void);

static void proc_start(void)
{
	struct start_report r = {{0}, 0};
	struct env_report rep = {start_report_fn, &r, 0, 0};
	struct onr_config cfg;
	char err[256], why[320];
	int rc, n_before = 0, *before;
	unsigned std_held;

	rc = env_config_from_environ(&cfg, environ, &rep);
	log_level = cfg.log;
	if (rc < 0) {
		if (r.errors > 1)
			snprintf(why, sizeof(why), "%s (and %u more EF_ errors)", r.first,
				 r.errors - 1);
		else
			snprintf(why, sizeof(why), "%s", r.first);
		fallback(cfg.no_fail, why);
		return;
	}
	std_held = std_fds_hold();
	before = fds_open(&n_before);
	sh = arena_create(&cfg);
	if (!sh) {
		arena_destroy();
		free(before);
		std_fds_release(std_held);
		fallback(cfg.no_fail, "cannot map the stack's shared state");
		return;
	}
	rc = stack_rt_open(&sh->rt, &cfg, err, sizeof(err));
	stack_region_place(NULL);
	if (rc < 0) {
		arena_destroy();
		free(before);
		std_fds_release(std_held);
		fallback(cfg.no_fail, err);
		return;
	}
	sh->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sh->wake_fd < 0) {
		stack_rt_close(&sh->rt);
		arena_destroy();
		free(before);
		std_fds_release(std_held);
		fallback(cfg.no_fail, "cannot make the stack's wake eventfd");
		return;
	}
	if (onr_epoll_start(sh->rt.stack.st->n_socks) < 0) {
		real_close(sh->wake_fd);
		stack_rt_close(&sh->rt);
		arena_destroy();
		free(before);
		std_fds_release(std_held);
		fallback(cfg.no_fail, "cannot map the shared epoll arena");
		return;
	}
	internal_record(before, n_before);
	free(before);
	std_fds_release(std_held);
	{
		struct stat st;
		if (fstat(sh->rt.region.fd, &st) == 0)
			sh->region_ino = st.st_ino;
	}
	sh->pids[0] = getpid();
	sh->rt.stack.notify = proc_notify;
	sh->rt.stack.notify_arg = sh;
	stack_rt_image_save(&sh->rt, &image);
	image_id = image_id_new();
	sh->image_id = image_id;
	spin_ns = (int64_t)cfg.poll_usec * 1000;
	lock_ops = (struct pkt_lock_ops){lock_raw, unlock_raw, NULL};
	atexit(proc_exit);
	onr_log(3, "stack %s on %s (%s)", sh->rt.region.hdr->name, sh->rt.ifname,
		sh->rt.stack.link->mode);
	__atomic_store_n(&proc_state, ONR_PROC_READY, __ATOMIC_RELEASE);
}

struct stack_rt *onr_stack(void)
{
	/* The stack's own start makes sockets (the links' ioctls, netlink): those are the
	 * kernel's, and must not wait for the start they are part of. */
	static __thread bool starting;
	enum onr_proc_state st = __atomic_load_n(&proc_state, __ATOMIC_ACQUIRE);

	if (st == ONR_PROC_UNINIT) {
		if (starting)
			return NULL;
		ONR_REAL_READY();
		pthread_mutex_lock(&start_lock);
		starting = true;
		if (proc_state == ONR_PROC_UNINIT)
			proc_start();
		starting = false;
		pthread_mutex_unlock(&start_lock);
		st = proc_state;
	}
	return st == ONR_PROC_READY ? &sh->rt : NULL;
}

struct stack_rt *onr_stack_if_ready(void)
{
	return __atomic_load_n(&proc_state, __ATOMIC_ACQUIRE) == ONR_PROC_READY ? &sh->rt : NULL;
}

/* Drop one fd's reference on its stack socket (lock held); the last one closes it. */
void onr_sock_unref(uint32_t id)
{
	struct stack_sock *so = sock_get(&sh->rt.stack, id);

	if (so && (so->refs == 0 || --so->refs == 0)) {
		onr_epoll_sock_closed(id);
		sock_close(&sh->rt.stack, id);
	}
}

static bool connections_closing(const struct stack *s)
{
	for (uint32_t id = 0; id < s->st->n_socks; id++) {
		const struct stack_sock *so = &s->socks[id];
		if (so->type == SOCK_T_TCP && so->refs == 0 &&
		    (so->state == TCPS_FIN_WAIT_1 || so->state == TCPS_CLOSING ||
		     so->state == TCPS_LAST_ACK || so->state == TCPS_SYN_SENT ||
		     (so->state == TCPS_ESTABLISHED && so->tcp.sndq_bytes)))
			return true;
	}
	return false;
}

/* Whether process pid maps the region (a process that exec'd, or a reused pid, does not). */
static bool maps_region(pid_t pid)
{
	char path[64], line[512];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long long ino = 0;
		if (sscanf(line, "%*s %*s %*s %*s %llu", &ino) == 1 && ino == sh->region_ino)
			found = true;
	}
	fclose(f);
	return found;
}

/*
 * This process leaves the family (under the stack lock). It was the last when no other
 * member still maps the region: members that exec'd (by any route, posix_spawn included)
 * or died are found out here, which a count kept at fork and exit never would be.
 */
static bool family_leave(void)
{
	pid_t me = getpid();
	bool last = true;

	for (int i = 0; i < ONR_MAX_PROCS; i++) {
		if (sh->pids[i] == me)
			sh->pids[i] = 0;
		else if (sh->pids[i] && !maps_region(sh->pids[i]) &&
			 !(sh->execing[i] && kill(sh->pids[i], 0) == 0))
			sh->pids[i] = 0;
		else if (sh->pids[i])
			last = false;
	}
	return last;
}

/*
 * The process ends: its fds stop naming their sockets. The last process of the family gives
 * closing connections a moment to finish (their FINs and last data acknowledged), then
 * closes the stack: the region is removed and a tap the stack made goes away.
 */
static void proc_exit(void)
{
	bool last;

	if (proc_state != ONR_PROC_READY)
		return;
	pthread_mutex_lock(&fds_lock);
	if (onr_lock() != 0) {
		pthread_mutex_unlock(&fds_lock);
		return;
	}
	for (int fd = 0; fd < onr_fd_limit(); fd++) {
		struct onr_fd *e = onr_fd_get(fd);
		if (e && e->kind == ONR_FD_STACK) {
			onr_sock_unref(e->id);
			onr_fd_clear(fd);
		}
	}
	onr_epoll_exit();
	last = family_leave();
	if (last) {
		int64_t end = onr_now_ns() + EXIT_LINGER_NS;
		while (connections_closing(&sh->rt.stack) && onr_now_ns() < end) {
			stack_rt_poll(&sh->rt);
			onr_unlock();
			stack_rt_wait(&sh->rt, 1000000);
			onr_lock();
		}
	}
	onr_unlock();
	pthread_mutex_unlock(&fds_lock);
	helper_stop_join();
	__atomic_store_n(&proc_state, ONR_PROC_DISABLED, __ATOMIC_RELEASE);
	if (last) {
		/* the links' libraries close their fds through close(): let them */
		__atomic_store_n(&n_internal, 0, __ATOMIC_RELEASE);
		stack_rt_close(&sh->rt);
		real_close(sh->wake_fd);
	}
}

/* ---- fork ----------------------------------------------------------------------------- */

void onr_fds_lock(void)
{
	pthread_mutex_lock(&fds_lock);
}

void onr_fds_unlock(void)
{
	pthread_mutex_unlock(&fds_lock);
}

/* Every accelerated fd gains a reference for the child (or loses it again): counted before
 * the fork, so that a parent closing at once cannot close a socket under the child. */
static void fork_count(int delta)
{
	for (int fd = 0; fd < onr_fd_limit(); fd++) {
		struct onr_fd *e = onr_fd_get(fd);
		struct stack_sock *so;

		if (e && e->kind == ONR_FD_STACK && (so = sock_get(&sh->rt.stack, e->id)))
			so->refs = (uint32_t)((int)so->refs + delta);
	}
	onr_epoll_fork(delta); /* epoll sets are shared like the sockets in them */
}

/* A forked child joins the family, entered by its parent before fork returns there (a
 * parent that exits at once, as a daemon's does, must already count it). With every slot
 * taken the family cannot see it: warn, as its stack may then be closed under it. */
static void family_join(pid_t child)
{
	for (int i = 0; i < ONR_MAX_PROCS; i++)
		if (sh->pids[i] == 0) {
			sh->pids[i] = child;
			sh->execing[i] = 0;
			return;
		}
	onr_log(1, "more than %d processes share the stack: process %d is not tracked",
		ONR_MAX_PROCS, (int)child);
}

__attribute__((visibility("default"))) pid_t fork(void)
{
	bool shared;
	pid_t pid;

	ONR_REAL_READY();
	pthread_mutex_lock(&fds_lock);
	shared = onr_stack_if_ready() && onr_lock() == 0;
	if (shared) {
		fork_count(+1);
		onr_unlock();
	}
	pid = real_fork();
	if (pid == 0) {
		/* the child: one thread, no helper yet; its locks are copies */
		pthread_mutex_init(&fds_lock, NULL);
		helper_running = false;
		in_stack = 0;
		sig_deferred = 0;
		return 0;
	}
	if (shared && onr_lock() == 0) {
		if (pid < 0)
			fork_count(-1);
		else
			family_join(pid);
		onr_unlock();
	}
	pthread_mutex_unlock(&fds_lock);
	return pid;
}

/*
 * vfork becomes fork: a vfork child runs in the parent's memory, so the fd table changes
 * its close()/close_range() make before exec (Python's subprocess closes every fd there)
 * would become the parent's, and its stack sockets would lose their references.
 */
__attribute__((visibility("default"))) pid_t vfork(void)
{
	return fork();
}

/* ---- exec: the new image keeps the stack ------------------------------------------------- */

/*
 * A process that execs with accelerated sockets the new image inherits (not close-on-exec)
 * hands the stack over (design §8): the arena, the region and the link's fds are kept open
 * across the exec, a record of its fd table goes in a memfd, and ONRAMP_EXEC in the new
 * environment names both. The library's constructor in the new image maps the arena again
 * at the same address, takes the link over (stack_rt_adopt) and rebuilds the fd table: the
 * sockets that survived keep their references, those that exec closed drop theirs. When
 * nothing would survive, or the new image would not load the library, the process leaves
 * the stack as at exit before it execs. posix_spawn execs inside glibc, out of reach: a
 * spawned child's inherited sockets are kernel sockets there, as without the library.
 */
#define EXEC_MAGIC 0x63657865726e6f72ull /* "ronexec" */
#define EXEC_ENV   "ONRAMP_EXEC"

struct exec_rec_hdr {
	uint64_t magic;
	pid_t pid;
	uint32_t n_fds;
	uint32_t n_internal;
	int internal[ONR_INTERNAL_MAX]; /* the stack's fds kept open for the new image */
};

struct exec_rec_fd {
	int fd;
	int cloexec; /* exec closes it: the new image drops its reference */
	struct onr_fd e;
};

struct exec_prep {
	char **envp;  /* what the real exec gets (malloc'd); NULL: the caller's */
	int rec_fd;   /* the record, -1 */
	int slot;     /* this process's family slot, marked execing; -1 */
	bool held;    /* fds_lock is held */
	bool left;    /* the process left the stack for the exec */
	int n_cleared; /* fds whose FD_CLOEXEC was cleared, to set again if exec fails */
	int cleared[ONR_INTERNAL_MAX];
};

static bool env_preloads_us(char *const envp[])
{
	for (size_t i = 0; envp && envp[i]; i++)
		if (!strncmp(envp[i], "LD_PRELOAD=", 11) && strstr(envp[i], "libonramp"))
			return true;
	return false;
}

static bool fd_cloexec(int fd)
{
	int f = real_fcntl(fd, F_GETFD);

	return f < 0 || (f & FD_CLOEXEC);
}

/* Whether an accelerated socket of this process outlives the exec. */
static bool exec_keeps_sockets(void)
{
	for (int fd = 0; fd < onr_fd_limit(); fd++) {
		struct onr_fd *e = onr_fd_get(fd);
		if (e && e->kind == ONR_FD_STACK && !fd_cloexec(fd))
			return true;
	}
	return false;
}

static bool fd_is_netlink(int fd)
{
	int dom = 0;
	socklen_t len = sizeof(dom);

	return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 && dom == AF_NETLINK;
}

/* Write the record of the fd table and keep the stack's fds open across exec (stack lock
 * held). The control plane's netlink socket closes: the new image opens its own. */
static int exec_record(struct exec_prep *x)
{
	struct exec_rec_hdr h = {.magic = EXEC_MAGIC, .pid = getpid()};
	off_t at = sizeof(h);

	x->rec_fd = memfd_create("onramp-exec", 0); /* inherited: the new image reads it */
	if (x->rec_fd < 0)
		return -errno;
	for (int fd = 0; fd < onr_fd_limit(); fd++) {
		struct onr_fd *e = onr_fd_get(fd);
		struct exec_rec_fd r;

		if (!e || (e->kind != ONR_FD_STACK && e->kind != ONR_FD_PENDING))
			continue;
		memset(&r, 0, sizeof(r));
		r.fd = fd;
		r.cloexec = fd_cloexec(fd);
		r.e = *e;
		if (pwrite(x->rec_fd, &r, sizeof(r), at) != (ssize_t)sizeof(r))
			return -EIO;
		at += (off_t)sizeof(r);
		h.n_fds++;
	}
	for (int i = 0; i < n_internal; i++) {
		int fd = internal_fd[i], f;

		if (fd < 0 || fd_is_netlink(fd) || (f = real_fcntl(fd, F_GETFD)) < 0)
			continue;
		if ((f & FD_CLOEXEC) && real_fcntl(fd, F_SETFD, f & ~FD_CLOEXEC) == 0)
			x->cleared[x->n_cleared++] = fd;
		h.internal[h.n_internal++] = fd;
	}
	if (pwrite(x->rec_fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EIO;
	return 0;
}

/* envp with EXEC_ENV=<arena fd>:<record fd> in place of any it had (malloc'd, or NULL). */
static char **exec_env(char *const envp[], int rec_fd)
{
	static char var[64]; /* the exec replaces this image, or exec_end drops the array */
	size_t n = 0, k = 0;
	char **v;

	while (envp && envp[n])
		n++;
	v = malloc((n + 2) * sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(envp[i], EXEC_ENV "=", sizeof(EXEC_ENV)))
			v[k++] = envp[i];
	snprintf(var, sizeof(var), EXEC_ENV "=%d:%d", arena_fd, rec_fd);
	v[k++] = var;
	v[k] = NULL;
	return v;
}

static void exec_undo(struct exec_prep *x)
{
	for (int i = 0; i < x->n_cleared; i++) {
		int f = real_fcntl(x->cleared[i], F_GETFD);
		if (f >= 0)
			real_fcntl(x->cleared[i], F_SETFD, f | FD_CLOEXEC);
	}
	x->n_cleared = 0;
	if (x->rec_fd >= 0)
		real_close(x->rec_fd);
	x->rec_fd = -1;
	if (x->slot >= 0)
		sh->execing[x->slot] = 0;
	x->slot = -1;
	free(x->envp);
	x->envp = NULL;
}

/* Before the real exec: the environment it gets. */
static char *const *exec_begin(char *const envp[], struct exec_prep *x)
{
	pid_t me = getpid();
	int rc = -1;

	*x = (struct exec_prep){.rec_fd = -1, .slot = -1};
	ONR_REAL_READY();
	if (__atomic_load_n(&proc_state, __ATOMIC_ACQUIRE) != ONR_PROC_READY)
		return envp;
	pthread_mutex_lock(&fds_lock);
	if (env_preloads_us(envp) && exec_keeps_sockets()) {
		/* no thread of ours may hold the stack lock when exec ends the threads */
		helper_stop_join();
		if (lock_raw(NULL) == 0) {
			rc = exec_record(x);
			/* this image's names of shared epoll sets do not survive it (the new
			 * image starts with none) */
			if (rc == 0)
				onr_epoll_exit();
			for (int i = 0; rc == 0 && i < ONR_MAX_PROCS; i++)
				if (sh->pids[i] == me) {
					sh->execing[i] = 1;
					x->slot = i;
				}
			unlock_raw(NULL);
		} else {
			in_stack--;
		}
		if (rc == 0)
			x->envp = exec_env(envp, x->rec_fd);
		if (x->envp) {
			x->held = true;
			return x->envp;
		}
		onr_log(1, "cannot hand the stack to the new image (%s): its sockets leave the stack",
			rc ? strerror(-rc) : "no memory");
		exec_undo(x);
	}
	pthread_mutex_unlock(&fds_lock);
	/* nothing accelerated outlives the exec (or the library will not be there): this image's
	 * sockets end here, as at exit */
	proc_exit();
	x->left = true;
	return envp;
}

/* The real exec failed: this image goes on (errno kept). */
static void exec_end(struct exec_prep *x)
{
	int err = errno;

	if (x->left)
		onr_log(1, "exec failed (%s) after this process's sockets left the stack",
			strerror(err));
	exec_undo(x);
	if (x->held)
		pthread_mutex_unlock(&fds_lock);
	errno = err;
}

#define EXEC_WRAP(call)                                                                       \
	do {                                                                                  \
		struct exec_prep x;                                                           \
		char *const *env = exec_begin(envp, &x);                                      \
		int rc = (call);                                                              \
		exec_end(&x);                                                                 \
		return rc;                                                                    \
	} while (0)

__attribute__((visibility("default"))) int execve(const char *path, char *const argv[],
						  char *const envp[])
{
	EXEC_WRAP(real_execve(path, argv, env));
}

__attribute__((visibility("default"))) int execvpe(const char *file, char *const argv[],
						   char *const envp[])
{
	EXEC_WRAP(real_execvpe(file, argv, env));
}

__attribute__((visibility("default"))) int fexecve(int fd, char *const argv[], char *const envp[])
{
	EXEC_WRAP(real_fexecve(fd, argv, env));
}

__attribute__((visibility("default"))) int execveat(int dirfd, const char *path,
						    char *const argv[], char *const envp[],
						    int flags)
{
	ONR_REAL_READY();
	if (!real_execveat) {
		errno = ENOSYS;
		return -1;
	}
	EXEC_WRAP(real_execveat(dirfd, path, argv, env, flags));
}

__attribute__((visibility("default"))) int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

__attribute__((visibility("default"))) int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

/* The execl family: its arguments (and, for execle, the envp after their NULL) as arrays. */
enum execl_kind { EXECL, EXECLP, EXECLE };

static int execl_any(enum execl_kind kind, const char *path, const char *arg, va_list ap)
{
	char **argv, **envp = environ;
	size_t n = 1;
	va_list c;

	va_copy(c, ap);
	while (va_arg(c, const char *))
		n++;
	va_end(c);
	argv = alloca((n + 1) * sizeof(*argv));
	argv[0] = (char *)arg;
	for (size_t i = 1; i <= n; i++)
		argv[i] = va_arg(ap, char *);
	if (kind == EXECLE)
		envp = va_arg(ap, char **);
	return kind == EXECLP ? execvpe(path, argv, envp) : execve(path, argv, envp);
}

__attribute__((visibility("default"))) int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	int rc;

	va_start(ap, arg);
	rc = execl_any(EXECL, path, arg, ap);
	va_end(ap);
	return rc;
}

__attribute__((visibility("default"))) int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	int rc;

	va_start(ap, arg);
	rc = execl_any(EXECLP, file, arg, ap);
	va_end(ap);
	return rc;
}

__attribute__((visibility("default"))) int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	int rc;

	va_start(ap, arg);
	rc = execl_any(EXECLE, path, arg, ap);
	va_end(ap);
	return rc;
}

/* The new image gives up the stack it was handed: the fds kept for it close, and the
 * inherited accelerated sockets are idle kernel sockets from now on. */
static void adopt_fail(const struct exec_rec_hdr *h, int rec_fd, const char *why)
{
	onr_log(1, "cannot keep the stack across exec: %s; %u inherited sockets are lost", why,
		h->n_fds);
	for (uint32_t i = 0; i < h->n_internal && i < ONR_INTERNAL_MAX; i++)
		real_close(h->internal[i]);
	if (arena_fd >= 0)
		real_close(arena_fd);
	arena_fd = -1;
	arena = NULL;
	sh = NULL;
	real_close(rec_fd);
	__atomic_store_n(&proc_state, ONR_PROC_DISABLED, __ATOMIC_RELEASE);
}

/* The fd table as the old image left it: survivors keep their references, the rest drop
 * theirs (stack lock held). Returns the sockets kept. */
static unsigned adopt_fds(const struct exec_rec_hdr *h, int rec_fd)
{
	unsigned kept = 0;

	for (uint32_t i = 0; i < h->n_fds; i++) {
		struct exec_rec_fd r;
		struct onr_fd *slot;
		bool open;

		if (pread(rec_fd, &r, sizeof(r), (off_t)(sizeof(*h) + i * sizeof(r))) !=
		    (ssize_t)sizeof(r))
			break;
		open = !r.cloexec && real_fcntl(r.fd, F_GETFD) >= 0;
		if (open && (slot = onr_fd_slot(r.fd))) {
			*slot = r.e;
			kept += r.e.kind == ONR_FD_STACK;
		} else if (r.e.kind == ONR_FD_STACK) {
			onr_sock_unref(r.e.id);
		}
	}
	return kept;
}

static void exec_adopt(int afd, int rec_fd)
{
	struct start_report r = {{0}, 0};
	struct env_report rep = {start_report_fn, &r, 0, 0};
	struct exec_rec_hdr h = {0};
	struct onr_arena a;
	struct onr_config cfg;
	char err[256];
	int n_before = 0, *before;
	unsigned kept;

	env_config_from_environ(&cfg, environ, &rep);
	log_level = cfg.log;
	spin_ns = (int64_t)cfg.poll_usec * 1000;
	arena_fd = afd;
	if (pread(rec_fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.magic != EXEC_MAGIC ||
	    h.pid != getpid()) {
		h.n_fds = h.n_internal = 0;
		adopt_fail(&h, rec_fd, "its record is not this process's");
		return;
	}
	if (pread(afd, &a, sizeof(a), 0) != (ssize_t)sizeof(a) || a.magic != ARENA_MAGIC ||
	    mmap(a.base, a.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, afd,
		 0) != a.base) {
		adopt_fail(&h, rec_fd, "its shared state cannot be mapped where it was");
		return;
	}
	arena = a.base;
	sh = arena->sh;
	link_arena_use(&arena->alloc);
	before = fds_open(&n_before);
	if (stack_rt_adopt(&sh->rt, &image, err, sizeof(err)) < 0) {
		free(before);
		munmap(arena, a.size);
		adopt_fail(&h, rec_fd, err);
		return;
	}
	if (onr_epoll_start(sh->rt.stack.st->n_socks) < 0) {
		free(before);
		adopt_fail(&h, rec_fd, "no memory for its epoll sets");
		return;
	}
	internal_record(before, n_before); /* this image's control plane */
	free(before);
	for (uint32_t i = 0; i < h.n_internal && i < ONR_INTERNAL_MAX; i++)
		internal_add(h.internal[i]);
	for (int i = 0; i < n_internal; i++) /* closed on a further exec that does not keep them */
		real_fcntl(internal_fd[i], F_SETFD, FD_CLOEXEC);
	image_id = image_id_new(); /* the first lock puts this image's parts in place */
	lock_ops = (struct pkt_lock_ops){lock_raw, unlock_raw, NULL};
	if (lock_raw(NULL) != 0) {
		in_stack--;
		adopt_fail(&h, rec_fd, "its lock cannot be taken");
		return;
	}
	kept = adopt_fds(&h, rec_fd);
	for (int i = 0; i < ONR_MAX_PROCS; i++)
		if (sh->pids[i] == h.pid)
			sh->execing[i] = 0;
	unlock_raw(NULL);
	real_close(rec_fd);
	atexit(proc_exit);
	__atomic_store_n(&proc_state, ONR_PROC_READY, __ATOMIC_RELEASE);
	helper_start();
	onr_log(3, "stack %s kept across exec: %u sockets", sh->rt.region.hdr->name, kept);
}

/* In every image the library is loaded into: one handed a stack by exec takes it over
 * before main runs, so that its inherited sockets work from its first call. */
__attribute__((constructor)) static void exec_constructor(void)
{
	const char *v = getenv(EXEC_ENV);
	int afd, rec_fd;

	if (!v)
		return;
	if (sscanf(v, "%d:%d", &afd, &rec_fd) == 2) {
		ONR_REAL_READY();
		pthread_mutex_lock(&start_lock);
		exec_adopt(afd, rec_fd);
		pthread_mutex_unlock(&start_lock);
	}
	unsetenv(EXEC_ENV); /* the image's own children are not handed anything this way */
}
