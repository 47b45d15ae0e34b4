/*
 * tools/demo/region_demo.c — a stack region with traffic-shaped pool use, for `make demo`
 * until the preload library exists. It creates the region from the EF_ environment, fills
 * the receive ring, queues received frames (one a 9000-byte chain) and frames to send, then
 * waits for signals: SIGUSR1 floods the receive path to its cap (CRITICAL pressure), SIGTERM
 * or SIGINT returns every buffer, proves the pool full and removes the region.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "region.h"

#define MAX_HELD 65536

static uint32_t held[MAX_HELD];
static unsigned n_held;

static void report_line(void *arg, enum env_severity sev, const char *msg)
{
	(void)arg;
	fprintf(stderr, "region_demo: %s%s\n", sev == ENV_WARNING ? "warning: " : "", msg);
}

static void hold(struct pkt_pool *p, enum onr_pkt_owner owner, unsigned n)
{
	while (n-- && n_held < MAX_HELD && pkt_pool_get(p, owner, &held[n_held]) == 0)
		n_held++;
}

/* What a stack looks like mid-flight: ring posted, frames queued both ways. */
static void traffic(struct stack_region *r)
{
	struct pkt_pool *p = &r->pool;
	uint32_t ring = p->shm->rx_ring_target;

	hold(p, ONR_PKT_RX_RING, ring);
	/* 40 frames arrived: they move to socket queues and the ring is refilled. */
	for (unsigned i = 0; i < 40 && i < n_held; i++)
		pkt_pool_set_owner(p, held[i], ONR_PKT_RX_QUEUED);
	hold(p, ONR_PKT_RX_RING, 40);
	if (n_held < MAX_HELD && pkt_pool_get_chain(p, ONR_PKT_RX_QUEUED, 9000, &held[n_held]) == 0)
		n_held++;
	hold(p, ONR_PKT_TX_QUEUED, 24);
	hold(p, ONR_PKT_TX_RING, 8);
	r->stats->memory_pressure_drops = 0;
}

/* A receiver that never reads: the RX path grows until it hits EF_MAX_RX_PACKETS. */
static void flood(struct stack_region *r)
{
	hold(&r->pool, ONR_PKT_RX_QUEUED, r->pool.shm->max_rx);
}

static int finish(struct stack_region *r)
{
	char report[1024];
	unsigned bad;

	pkt_pool_put_burst(&r->pool, held, n_held);
	n_held = 0;
	bad = pkt_pool_check(&r->pool, report, sizeof(report)) +
	      pkt_pool_leaks(&r->pool, report, sizeof(report));
	if (bad)
		fprintf(stderr, "region_demo: pool not full: %s\n", report);
	else
		printf("region_demo: every buffer returned, pool full (%u of %u brought in)\n",
		       r->pool.shm->alloc, r->pool.shm->max);
	stack_region_destroy(r);
	return bad ? 1 : 0;
}

int main(void)
{
	extern char **environ;
	struct env_report rep = {.fn = report_line};
	struct onr_config cfg;
	struct stack_region r;
	sigset_t set;
	int sig, rc;

	if (env_config_from_environ(&cfg, environ, &rep) != 0)
		return 2;
	rc = stack_region_create(&r, &cfg);
	if (rc) {
		fprintf(stderr, "region_demo: cannot create the stack region: %s\n", strerror(-rc));
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);

	stack_region_lock(&r);
	traffic(&r);
	stack_region_unlock(&r);
	printf("region_demo: stack '%s' ready (pid %d)\n", r.hdr->name, (int)getpid());
	fflush(stdout);
	while (sigwait(&set, &sig) == 0 && sig == SIGUSR1) {
		stack_region_lock(&r);
		flood(&r);
		stack_region_unlock(&r);
		printf("region_demo: receive path flooded\n");
		fflush(stdout);
	}
	stack_region_lock(&r);
	rc = finish(&r);
	return rc;
}
