/*
 * shim/intercept/fdtab.c — the fd table: one entry per descriptor number, up to the hard
 * RLIMIT_NOFILE (at most 1<<20). The table is reserved once as untouched anonymous memory,
 * so it costs only the pages of fds actually used, and an fd's entry never moves: readers
 * need no lock. Process-local: fork copies it, as the kernel copies the fd table.
 */
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "intercept.h"

#define FDTAB_MAX (1 << 20)

static struct onr_fd *fdtab;
static int fdtab_size;
static int fdtab_top; /* every fd in use is below */

static void fdtab_init(void)
{
	struct rlimit rl;
	size_t n = 65536;
	void *p;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
		n = rl.rlim_max > n ? rl.rlim_max : n;
	if (n > FDTAB_MAX)
		n = FDTAB_MAX;
	p = mmap(NULL, n * sizeof(struct onr_fd), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return;
	fdtab = p;
	__atomic_store_n(&fdtab_size, (int)n, __ATOMIC_RELEASE);
}

struct onr_fd *onr_fd_get(int fd)
{
	int size = __atomic_load_n(&fdtab_size, __ATOMIC_ACQUIRE);

	if ((unsigned)fd >= (unsigned)size || fdtab[fd].kind == ONR_FD_NONE)
		return NULL;
	return &fdtab[fd];
}

struct onr_fd *onr_fd_slot(int fd)
{
	static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

	if (!__atomic_load_n(&fdtab_size, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&init_lock);
		if (!fdtab_size)
			fdtab_init();
		pthread_mutex_unlock(&init_lock);
	}
	if ((unsigned)fd >= (unsigned)fdtab_size)
		return NULL;
	if (fd >= __atomic_load_n(&fdtab_top, __ATOMIC_RELAXED))
		__atomic_store_n(&fdtab_top, fd + 1, __ATOMIC_RELAXED);
	return &fdtab[fd];
}

void onr_fd_clear(int fd)
{
	if ((unsigned)fd < (unsigned)fdtab_size)
		memset(&fdtab[fd], 0, sizeof(fdtab[fd]));
}

int onr_fd_limit(void)
{
	return __atomic_load_n(&fdtab_top, __ATOMIC_RELAXED);
}
