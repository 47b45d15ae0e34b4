/*
 * shim/abi/stack_shm.h — layout of a stack region, /dev/shm/onramp-<uid>-<name>.
 *
 * TYPES ONLY. This header is the contract between the stack, stackdump, stackd and forked
 * children that map the region at other addresses: fixed-width fields, no pointers, every
 * reference an index or a byte offset from the start of the region. A change that moves a
 * field bumps ONR_ABI_MAJOR; appending a section or a counter bumps ONR_ABI_MINOR.
 *
 * Region: header | config | stats | pool | pkt_meta[max] | socks[n] | (page) pkt_data
 * The packet data area is page-aligned: it is the AF_XDP UMEM.
 */
#ifndef ONRAMP_ABI_STACK_SHM_H
#define ONRAMP_ABI_STACK_SHM_H

#include <stdint.h>
#include <pthread.h>

#define ONR_SHM_MAGIC	 0x31534d4152524f4eULL /* "NORRAMS1" read as bytes */
#define ONR_ABI_MAJOR	 1
#define ONR_ABI_MINOR	 2
#define ONR_SHM_PREFIX	 "onramp-"
#define ONR_SHM_DIR	 "/dev/shm"
#define ONR_NAME_MAX	 32 /* bytes of a stack name, NUL included */
#define ONR_IFNAME_MAX	 16 /* IFNAMSIZ */
#define ONR_PKT_BUF_SIZE 2048u
#define ONR_PKT_NIL	 UINT32_MAX /* "no buffer" in every index field */
#define ONR_PAGE_SIZE	 4096u

/* Header flags. */
#define ONR_REGION_READY   (1u << 0) /* fully initialised; set last by the creator */
#define ONR_REGION_CLOSING (1u << 1) /* the owner is tearing the stack down */

struct onr_section {
	uint64_t off;  /* bytes from the start of the region */
	uint64_t size; /* bytes */
};

/* Counters: u64 each, written by the lock holder, read without the lock by anyone. */
struct onr_stats {
#define ONR_STAT(name, doc) uint64_t name;
#include "stats.def"
#undef ONR_STAT
};

/*
 * Who holds a packet buffer. Accounting is exact (design §4 rule 2):
 *   count[FREE] + count[RX_RING] + ... + count[OTHER] == alloc   (always, under the lock)
 * and buffers [alloc, max) have never been handed out. The RX path is RX_RING + RX_QUEUED
 * (capped by max_rx); the TX path is TX_QUEUED + TX_RING + OTHER (capped by max_tx).
 * Keep in sync with pkt_owner_names in shim/pkt/pool.c and stackdump.
 */
enum onr_pkt_owner {
	ONR_PKT_FREE = 0,      /* on the free list */
	ONR_PKT_RX_RING = 1,   /* posted to the link for reception (fill ring, rx buffers) */
	ONR_PKT_RX_QUEUED = 2, /* received, waiting in a socket or reassembly queue */
	ONR_PKT_TX_QUEUED = 3, /* written by the application, not yet acknowledged/sent */
	ONR_PKT_TX_RING = 4,   /* handed to the link for transmission, not yet completed */
	ONR_PKT_OTHER = 5,     /* held by the application or the stack for other uses */
	ONR_PKT_OWNER_MAX = 6,
};

/* Memory pressure (design §4 rule 5). */
enum onr_mem_pressure {
	ONR_PRESSURE_NORMAL = 0,
	ONR_PRESSURE_LOW = 1,	   /* the RX ring cannot be refilled to its target */
	ONR_PRESSURE_CRITICAL = 2, /* RX at its cap, or no buffer left that RX may take */
};

/* Per-buffer metadata, kept apart from the data so that the data area is pure UMEM. */
struct onr_pkt_meta {
	uint32_t chain_next; /* next buffer of the same frame, or ONR_PKT_NIL */
	uint32_t queue_next; /* next frame in a queue or the free list, or ONR_PKT_NIL */
	uint32_t frame_len;  /* bytes in the whole chain; valid on the first buffer */
	uint32_t sock_id;    /* socket the buffer is accounted to, or ONR_PKT_NIL */
	uint16_t len;	     /* bytes of data in this buffer */
	uint16_t off;	     /* where the data starts in this buffer, bytes */
	uint16_t refcount;   /* holders; 0 exactly when owner == FREE */
	uint8_t owner;	     /* enum onr_pkt_owner */
	uint8_t flags;
	uint32_t user; /* protocol scratch (e.g. TCP sequence number) */
	uint32_t ts;   /* protocol time stamp (TCP send queue: last transmission, µs) */
};
_Static_assert(sizeof(struct onr_pkt_meta) == 32, "pkt meta is 32 bytes");

/*
 * A thread waiting for buffers. Each waiter sleeps on its own futex word, so a put wakes
 * exactly the waiters it can satisfy (oldest first): no herd, and no waiter left asleep
 * while buffers it could take are free.
 */
struct onr_pool_waiter {
	uint32_t futex; /* 0 while asleep; the waker sets 1 before FUTEX_WAKE */
	uint32_t need;	/* buffers wanted, all or nothing */
	uint16_t next;	/* next slot in the FIFO, or ONR_POOL_WAIT_NIL */
	uint8_t owner;	/* enum onr_pkt_owner the buffers are for */
	uint8_t state;	/* ONR_POOL_WAIT_* */
	int32_t pid;	/* waiting process */
};
#define ONR_POOL_WAIT_SLOTS  64
#define ONR_POOL_WAIT_NIL    0xffffu
#define ONR_POOL_WAIT_FREE   0 /* slot unused */
#define ONR_POOL_WAIT_QUEUED 1 /* in the FIFO, asleep or about to be */
#define ONR_POOL_WAIT_WOKEN  2 /* taken off the FIFO by a waker */

/*
 * Pool accounting. Written under the stack lock; `seq` is a sequence count (odd while a
 * writer is mid-update) so lock-free readers such as stackdump see consistent totals.
 */
struct onr_pool_shm {
	uint32_t buf_size;		   /* bytes per buffer, ONR_PKT_BUF_SIZE */
	uint32_t max;			   /* EF_MAX_PACKETS: buffers in the data area */
	uint32_t alloc;			   /* buffers brought into use; [alloc, max) untouched */
	uint32_t max_rx;		   /* EF_MAX_RX_PACKETS, resolved */
	uint32_t max_tx;		   /* EF_MAX_TX_PACKETS, resolved */
	uint32_t min_free;		   /* EF_MIN_FREE_PACKETS: reserve only RX may take */
	uint32_t rx_ring_target;	   /* buffers the link wants posted (EF_RXQ_SIZE) */
	uint32_t free_head;		   /* free list (LIFO through queue_next) */
	uint32_t count[ONR_PKT_OWNER_MAX]; /* buffers by owner */
	uint32_t pressure;		   /* enum onr_mem_pressure */
	uint32_t seq;			   /* sequence count over this struct */
	uint32_t waiters;		   /* threads waiting for buffers, slots and overflow */
	uint32_t overflow_waiters;	   /* waiters that found no free slot */
	uint32_t overflow_seq; /* futex word of the overflow waiters (woken all at once) */
	uint16_t wait_head;    /* FIFO of queued slots, oldest first */
	uint16_t wait_tail;
	uint32_t reserved[4];
	struct onr_pool_waiter wait[ONR_POOL_WAIT_SLOTS];
};
_Static_assert(sizeof(struct onr_pool_waiter) == 16, "pool waiter layout");
_Static_assert(__builtin_offsetof(struct onr_pool_shm, wait) == 96, "pool accounting layout");

/* Socket states shown by stackdump; the TCP machine defines its own finer states. */
struct onr_sock_row {
	uint32_t seq;	/* sequence count: odd while the owner rewrites the row */
	uint8_t in_use; /* 0: free row */
	uint8_t proto;	/* IPPROTO_TCP / IPPROTO_UDP */
	uint8_t state;	/* TCP: Linux's state number (netinet/tcp.h); UDP: 0 */
	uint8_t flags;
	uint32_t laddr_be32, raddr_be32;
	uint16_t lport_be16, rport_be16;
	int32_t owner_pid;
	uint32_t rx_bufs, tx_bufs; /* buffers held, by path */
	uint32_t rx_bytes_queued, tx_bytes_queued;
	uint64_t rx_bytes, tx_bytes; /* totals since open */
	uint8_t reserved[16];
};
_Static_assert(sizeof(struct onr_sock_row) == 72, "socket row layout");

struct onr_shm_header {
	uint64_t magic;			/* ONR_SHM_MAGIC */
	uint16_t abi_major;		/* ONR_ABI_MAJOR */
	uint16_t abi_minor;		/* ONR_ABI_MINOR */
	uint32_t header_size;		/* sizeof(struct onr_shm_header) */
	uint64_t region_size;		/* bytes: the whole file */
	char name[ONR_NAME_MAX];	/* stack name, NUL-terminated */
	int32_t pid;			/* creating process */
	uint32_t uid;			/* creating user */
	uint64_t created_ns;		/* CLOCK_REALTIME at creation */
	uint64_t heartbeat_ns;		/* CLOCK_MONOTONIC, refreshed by whoever polls the stack */
	uint32_t flags;			/* ONR_REGION_* */
	uint32_t link_kind;		/* enum onr_link_kind (env.h) */
	char link_name[ONR_IFNAME_MAX]; /* interface in use, "" before a link is up */
	uint32_t n_stats;		/* counters in the stats section */
	uint32_t config_size;		/* sizeof(struct onr_config) of the writer */
	uint32_t n_socks;		/* rows in the socket table (EF_MAX_ENDPOINTS) */
	uint32_t sock_row_size;		/* sizeof(struct onr_sock_row) */
	uint32_t lock_recoveries;	/* times the stack lock was taken over from a dead holder */
	uint32_t reserved0;
	struct onr_section config;   /* struct onr_config (env.h) */
	struct onr_section stats;    /* struct onr_stats */
	struct onr_section pool;     /* struct onr_pool_shm */
	struct onr_section pkt_meta; /* struct onr_pkt_meta[pool.max] */
	struct onr_section socks;    /* struct onr_sock_row[n_socks] */
	struct onr_section pkt_data; /* pool.max * ONR_PKT_BUF_SIZE, page-aligned */
	struct onr_section stack;    /* the stack's own state (shim/stack/stack.h), opaque here */
	char link_mode[24];	     /* how the link does its I/O ("io_uring", "native copy") */
	uint8_t reserved[24];
	/* The stack lock: process-shared and robust (a holder that dies is recovered). */
	pthread_mutex_t stack_lock __attribute__((aligned(64)));
};
_Static_assert(sizeof(pthread_mutex_t) == 40, "pthread_mutex_t is 40 bytes on this ABI");
_Static_assert(__builtin_offsetof(struct onr_shm_header, config) == 128, "header layout");
_Static_assert(__builtin_offsetof(struct onr_shm_header, stack_lock) == 320, "header layout");
_Static_assert(sizeof(struct onr_shm_header) == 384, "header size");

#endif
