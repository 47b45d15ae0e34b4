/*
 * shim/intercept/real.c — the next definition of every interposed call (calls.def), found
 * with dlsym(RTLD_NEXT): normally libc's. Resolved once, on the first wrapper that runs (a
 * library constructor may make socket calls before ours has run).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "intercept.h"

#define ONR_CALL(ret, name, params, args) ret(*real_##name) params;
#include "calls.def"
#undef ONR_CALL

bool onr_real_done;

void onr_real_init(void)
{
	/* Racing threads write the same values; the flag is set last. */
#define ONR_CALL(ret, name, params, args)                                                     \
	*(void **)&real_##name = dlsym(RTLD_NEXT, #name);
#include "calls.def"
#undef ONR_CALL
	__atomic_store_n(&onr_real_done, true, __ATOMIC_RELEASE);
}
