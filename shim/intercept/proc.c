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
#include <sys/stat.h>
#include <unistd.h>

#include "intercept.h"
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
	uint64_t region_ino; /* the region file, as /proc/<pid>/maps names it */
};

static struct onr_shared *sh;
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

static int lock_raw(void *arg)
{
	(void)arg;
	in_stack++;
	return stack_region_lock(&sh->rt.region);
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
					    "anon_inode:bpf", "/dev/net/tun", "/run/onramp/"};
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

/* Record as the stack's the fds open now that were not in before[] and are of its kinds. */
static void internal_record(const int *before, int n_before)
{
	int n_now = 0, k = 0;
	int *now = fds_open(&n_now);

	if (!now || !before)
		goto out;
	for (int i = 0; i < n_now && k < ONR_INTERNAL_MAX; i++)
		if (!in_list(before, n_before, now[i]) && fd_of_stack_kind(now[i]))
			internal_fd[k++] = now[i];
	__atomic_store_n(&n_internal, k, __ATOMIC_RELEASE);
	onr_log(4, "the stack holds %d fds of its own", k);
out:
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
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		sh = NULL;
		fallback(cfg.no_fail, "cannot map the stack's shared state");
		return;
	}
	std_held = std_fds_hold();
	before = fds_open(&n_before);
	rc = stack_rt_open(&sh->rt, &cfg, err, sizeof(err));
	if (rc < 0) {
		munmap(sh, sizeof(*sh));
		sh = NULL;
		free(before);
		std_fds_release(std_held);
		fallback(cfg.no_fail, err);
		return;
	}
	sh->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sh->wake_fd < 0) {
		stack_rt_close(&sh->rt);
		munmap(sh, sizeof(*sh));
		sh = NULL;
		free(before);
		std_fds_release(std_held);
		fallback(cfg.no_fail, "cannot make the stack's wake eventfd");
		return;
	}
	if (onr_epoll_start(sh->rt.stack.st->n_socks) < 0) {
		real_close(sh->wake_fd);
		stack_rt_close(&sh->rt);
		munmap(sh, sizeof(*sh));
		sh = NULL;
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
		else if (sh->pids[i] && !maps_region(sh->pids[i]))
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
	if (helper_running) {
		__atomic_store_n(&helper_stop, true, __ATOMIC_RELEASE);
		pthread_join(helper_tid, NULL);
		helper_running = false;
	}
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
