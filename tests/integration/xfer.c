/*
 * tests/integration/xfer.c — the integration tests' traffic tool: one program, two socket
 * back ends. `xfer stack ...` runs on an onramp stack through its native API (sock.h, the
 * link and addresses from EF_ variables, as the preload library will); `xfer kernel ...` runs
 * the same traffic on kernel sockets, for the Linux peer and for the side-by-side benchmark.
 *
 *   xfer stack|kernel tcp-server PORT [-c CONNS] [-b BYTES]
 *   xfer stack|kernel tcp-client ADDR PORT [-c CONNS] [-b BYTES] [-u USER_TIMEOUT_MS]
 *   xfer stack|kernel pingpong-server PORT
 *   xfer stack|kernel pingpong-client ADDR PORT [-n ROUNDS] [-s SIZE]
 *   xfer stack|kernel udp-echo PORT
 *   xfer stack|kernel udp-client ADDR PORT [-n ROUNDS] [-s SIZE]
 *   xfer stack idle
 *
 * Options go before `stack|kernel`: -c CONNS, -b BYTES, -n ROUNDS, -s SIZE, -u
 * USER_TIMEOUT_MS, -H (hold the stack after success), -K (hold it after a failure too).
 *
 * TCP: each of CONNS connections sends BYTES of a known pattern and checks, byte by byte, the
 * BYTES its peer sends back (both ways at once). A stack run then keeps its stack alive,
 * polling, until SIGTERM or SIGINT (-H), so that the harness can read it with stackdump. The
 * last line is a summary ("xfer: ok ..." or "xfer: FAILED ..."); exit 0 only when every byte
 * arrived as sent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "env.h"
#include "runtime.h"
#include "sock.h"

#define MAX_CONNS 4096
#define CHUNK	  65536

static volatile sig_atomic_t stop;
static bool use_stack, keep_after_failure;
static struct stack_rt rt;
static struct stack *S;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void x_turn(bool idle);

/* With -K a failed stack run keeps polling until SIGTERM, so that the harness can still read
 * how the failure left the stack (timeouts, buffers returned) before it goes. */
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stdout, "xfer: FAILED ");
	vfprintf(stdout, fmt, ap);
	fprintf(stdout, "\n");
	va_end(ap);
	fflush(stdout);
	if (keep_after_failure && use_stack && S)
		while (!stop)
			x_turn(true);
	exit(1);
}

static uint8_t pattern(uint64_t i)
{
	/* not periodic in any power of two, so a misplaced segment shows */
	return (uint8_t)((i * 2654435761u) >> 13 ^ i / 251);
}

/*
 * pattern(i..i+len-1) into buf, fast: byte by byte, pattern() took half of xfer's time and
 * capped the bulk runs near 1 Gbit/s on both back ends. Bits 13..20 of the product depend
 * only on the low 21 bits of i, so pattern(i) = pat_lo[i % 2^21] ^ (uint8_t)(i / 251), and
 * the second term is constant over runs of up to 251 bytes.
 */
#define PAT_LO_SIZE (1u << 21)
static void pattern_fill(uint8_t *buf, size_t len, uint64_t i)
{
	static uint8_t pat_lo[PAT_LO_SIZE];
	static bool ready;

	if (!ready) {
		for (uint32_t x = 0; x < PAT_LO_SIZE; x++)
			pat_lo[x] = (uint8_t)((x * 2654435761u) >> 13);
		ready = true;
	}
	while (len) {
		size_t lo = i % PAT_LO_SIZE, run = 251 - i % 251, j = 0;
		uint64_t q8 = (uint8_t)(i / 251) * 0x0101010101010101ull, w;

		run = run < PAT_LO_SIZE - lo ? run : PAT_LO_SIZE - lo;
		run = run < len ? run : len;
		for (; j + 8 <= run; j += 8) { /* eight bytes at a time; -O2 does not vectorize */
			memcpy(&w, pat_lo + lo + j, 8);
			w ^= q8;
			memcpy(buf + j, &w, 8);
		}
		for (; j < run; j++)
			buf[j] = pat_lo[lo + j] ^ (uint8_t)q8;
		buf += run;
		i += run;
		len -= run;
	}
}

/* ---- the two back ends: non-blocking, -errno ----------------------------------------- */

static int x_socket(bool tcp)
{
	if (use_stack)
		return sock_open(S, tcp ? SOCK_T_TCP : SOCK_T_UDP);
	int fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK, 0);
	return fd < 0 ? -errno : fd;
}

static int x_bind(int id, uint32_t addr_be32, uint16_t port)
{
	if (use_stack) {
		struct sock_addr a = {addr_be32, htons(port)};
		int one = 1;
		sock_setopt(S, (uint32_t)id, SOL_SOCKET, SO_REUSEADDR, one);
		return sock_bind(S, (uint32_t)id, &a);
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	int one = 1;
	sa.sin_addr.s_addr = addr_be32;
	setsockopt(id, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	return bind(id, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
}

static int x_listen(int id)
{
	if (use_stack)
		return sock_listen(S, (uint32_t)id, 4096);
	return listen(id, 4096) < 0 ? -errno : 0;
}

static int x_accept(int id)
{
	if (use_stack)
		return sock_accept(S, (uint32_t)id, NULL);
	int fd = accept4(id, NULL, NULL, SOCK_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

static int x_connect(int id, uint32_t addr_be32, uint16_t port)
{
	if (use_stack) {
		struct sock_addr a = {addr_be32, htons(port)};
		return sock_connect(S, (uint32_t)id, &a);
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = addr_be32;
	return connect(id, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
}

static ssize_t x_send(int id, const void *buf, size_t len, uint32_t to_be32, uint16_t port)
{
	if (use_stack) {
		struct sock_addr a = {to_be32, htons(port)};
		return sock_send(S, (uint32_t)id, buf, len, SOCK_MSG_DONTWAIT, to_be32 ? &a : NULL);
	}
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = to_be32;
	ssize_t n = sendto(id, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL,
			   to_be32 ? (struct sockaddr *)&sa : NULL, to_be32 ? sizeof(sa) : 0);
	return n < 0 ? -errno : n;
}

static ssize_t x_recv(int id, void *buf, size_t len, uint32_t *from_be32, uint16_t *port)
{
	if (use_stack) {
		struct sock_addr a = {0, 0};
		ssize_t n = sock_recv(S, (uint32_t)id, buf, len, SOCK_MSG_DONTWAIT, &a);
		if (from_be32)
			*from_be32 = a.addr_be32;
		if (port)
			*port = ntohs(a.port_be16);
		return n;
	}
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	ssize_t n = recvfrom(id, buf, len, MSG_DONTWAIT, (struct sockaddr *)&sa, &sl);
	if (n >= 0 && from_be32)
		*from_be32 = sa.sin_addr.s_addr;
	if (n >= 0 && port)
		*port = ntohs(sa.sin_port);
	return n < 0 ? -errno : n;
}

/* The socket's pending error, 0 when none (a finished connect, or nothing wrong). */
static int x_error(int id)
{
	int v = 0;
	socklen_t l = sizeof(v);

	if (use_stack)
		sock_getopt(S, (uint32_t)id, SOL_SOCKET, SO_ERROR, &v);
	else
		getsockopt(id, SOL_SOCKET, SO_ERROR, &v, &l);
	return -v;
}

static bool x_connected(int id)
{
	if (use_stack)
		return sock_events(S, (uint32_t)id) & (SOCK_EV_OUT | SOCK_EV_ERR | SOCK_EV_HUP);
	struct pollfd p = {.fd = id, .events = POLLOUT};
	return poll(&p, 1, 0) == 1;
}

static void x_setopt(int id, int level, int name, int v)
{
	if (use_stack)
		sock_setopt(S, (uint32_t)id, level, name, v);
	else
		setsockopt(id, level, name, &v, sizeof(v));
}

static void x_close(int id)
{
	if (use_stack)
		sock_close(S, (uint32_t)id);
	else
		close(id);
}

/* Move the stack (or nothing, for the kernel) and sleep a little when there was no work. */
static void x_turn(bool idle)
{
	if (!use_stack) {
		if (idle)
			usleep(50);
		return;
	}
	/* sleep only when this turn found nothing either: what it delivered (a datagram, an ACK
	 * that opens the window) is for the caller's next try, not for after a 1 ms wait */
	if (!stack_rt_poll(&rt) && idle)
		stack_rt_wait(&rt, 1000000);
}

/* ---- TCP bulk, both ways ------------------------------------------------------------- */

struct conn {
	int id;
	uint64_t sent, rcvd;
	bool open, shut;
};

static uint64_t opt_bytes = 1 << 20;
static unsigned opt_conns = 1, opt_rounds = 10000, opt_size = 1, opt_user_timeout;

/* Run the connections until every byte went both ways; returns whether all verified. */
static void tcp_pump(struct conn *c, unsigned n, uint64_t deadline_ns)
{
	static uint8_t buf[CHUNK], want[CHUNK];
	unsigned done = 0;

	while (done < n) {
		bool work = false;
		done = 0;
		for (unsigned i = 0; i < n; i++) {
			struct conn *k = &c[i];
			while (k->sent < opt_bytes) {
				size_t len =
				    opt_bytes - k->sent < CHUNK ? opt_bytes - k->sent : CHUNK;
				pattern_fill(buf, len, k->sent);
				ssize_t r = x_send(k->id, buf, len, 0, 0);
				if (r == -EAGAIN || r == -ENOBUFS)
					break;
				if (r < 0)
					die("connection %u: send after %llu bytes: %s", i,
					    (unsigned long long)k->sent, strerror((int)-r));
				k->sent += (uint64_t)r;
				work = true;
			}
			for (;;) {
				ssize_t r = x_recv(k->id, buf, sizeof(buf), NULL, NULL);
				if (r == -EAGAIN)
					break;
				if (r < 0)
					die("connection %u: receive after %llu bytes: %s", i,
					    (unsigned long long)k->rcvd, strerror((int)-r));
				if (r == 0) {
					if (k->rcvd != opt_bytes)
						die("connection %u: closed by the peer after %llu "
						    "of %llu bytes",
						    i, (unsigned long long)k->rcvd,
						    (unsigned long long)opt_bytes);
					break;
				}
				pattern_fill(want, (size_t)r, k->rcvd);
				if (memcmp(buf, want, (size_t)r) != 0) {
					size_t j = 0;
					while (buf[j] == want[j])
						j++;
					die("connection %u: byte %llu is 0x%02x, sent 0x%02x", i,
					    (unsigned long long)(k->rcvd + j), buf[j], want[j]);
				}
				k->rcvd += (uint64_t)r;
				work = true;
			}
			done += k->sent == opt_bytes && k->rcvd == opt_bytes;
		}
		if (stop)
			die("interrupted");
		if (now_ns() > deadline_ns)
			die("timed out with %u of %u connections complete", done, n);
		x_turn(!work);
	}
}

static void print_rate(const char *what, uint64_t bytes, uint64_t ns)
{
	printf("xfer: ok %s %llu bytes each way in %.3f s, %.2f Gbit/s each way\n", what,
	       (unsigned long long)bytes, ns / 1e9, bytes * 8.0 / (double)ns);
}

static void tcp_run(bool server, uint32_t addr_be32, uint16_t port)
{
	static struct conn c[MAX_CONNS];
	int lid = -1;
	uint64_t t0, deadline = now_ns() + 600ull * 1000000000u;

	if (server) {
		lid = x_socket(true);
		if (lid < 0 || x_bind(lid, 0, port) < 0 || x_listen(lid) < 0)
			die("cannot listen on port %u", port);
		printf("xfer: listening on %u\n", port);
		fflush(stdout);
		for (unsigned n = 0; n < opt_conns;) {
			int id = x_accept(lid);
			if (id >= 0) {
				c[n++] = (struct conn){.id = id, .open = true};
				continue;
			}
			if (id != -EAGAIN)
				die("accept: %s", strerror(-id));
			if (stop)
				die("interrupted while accepting");
			x_turn(true);
		}
	} else {
		for (unsigned n = 0; n < opt_conns; n++) {
			int id = x_socket(true);
			if (id < 0)
				die("socket: %s", strerror(-id));
			if (opt_user_timeout)
				x_setopt(id, IPPROTO_TCP, TCP_USER_TIMEOUT, (int)opt_user_timeout);
			int rc = x_connect(id, addr_be32, port);
			if (rc < 0 && rc != -EINPROGRESS)
				die("connect: %s", strerror(-rc));
			c[n] = (struct conn){.id = id, .open = true};
		}
		for (unsigned n = 0; n < opt_conns; n++) {
			while (!x_connected(c[n].id)) {
				if (now_ns() > deadline || stop)
					die("connection %u never established", n);
				x_turn(true);
			}
			int e = x_error(c[n].id);
			if (e)
				die("connect %u: %s", n, strerror(-e));
		}
	}
	t0 = now_ns();
	tcp_pump(c, opt_conns, deadline);
	for (unsigned n = 0; n < opt_conns; n++)
		x_close(c[n].id);
	if (lid >= 0)
		x_close(lid);
	print_rate(opt_conns > 1 ? "tcp (per connection)" : "tcp", opt_bytes, now_ns() - t0);
}

/* ---- ping-pong (latency) -------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Read exactly len bytes. */
static void read_full(int id, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = x_recv(id, buf + got, len - got, NULL, NULL);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			die("peer closed");
		if (r != -EAGAIN)
			die("receive: %s", strerror((int)-r));
		if (stop)
			die("interrupted");
		x_turn(false);
	}
}

static void write_full(int id, const uint8_t *buf, size_t len)
{
	size_t put = 0;

	while (put < len) {
		ssize_t r = x_send(id, buf + put, len - put, 0, 0);
		if (r > 0) {
			put += (size_t)r;
			continue;
		}
		if (r != -EAGAIN && r != -ENOBUFS)
			die("send: %s", strerror((int)-r));
		x_turn(false);
	}
}

static void pingpong(bool server, uint32_t addr_be32, uint16_t port)
{
	static uint8_t buf[65536];
	static uint64_t lat[1000000];
	unsigned rounds = opt_rounds < 1000000 ? opt_rounds : 1000000;
	int id;

	if (server) {
		int lid = x_socket(true);
		if (lid < 0 || x_bind(lid, 0, port) < 0 || x_listen(lid) < 0)
			die("cannot listen on port %u", port);
		printf("xfer: listening on %u\n", port);
		fflush(stdout);
		while ((id = x_accept(lid)) == -EAGAIN && !stop)
			x_turn(false);
		if (id < 0)
			die("accept");
		x_setopt(id, IPPROTO_TCP, TCP_NODELAY, 1);
		for (;;) {
			uint8_t hdr[4];
			read_full(id, hdr, 4);
			uint32_t n = (uint32_t)hdr[0] << 8 | hdr[1];
			if (n == 0)
				break;
			read_full(id, buf, n);
			write_full(id, hdr, 4);
			write_full(id, buf, n);
		}
		x_close(id);
		x_close(lid);
		printf("xfer: ok pingpong served\n");
		return;
	}
	id = x_socket(true);
	if (id < 0)
		die("socket: %s", strerror(-id));
	{
		int rc = x_connect(id, addr_be32, port);
		if (rc < 0 && rc != -EINPROGRESS)
			die("connect: %s", strerror(-rc));
	}
	while (!x_connected(id) && !stop)
		x_turn(false);
	if (x_error(id))
		die("connect: %s", strerror(-x_error(id)));
	x_setopt(id, IPPROTO_TCP, TCP_NODELAY, 1);
	for (unsigned r = 0; r < rounds; r++) {
		uint8_t hdr[4] = {(uint8_t)(opt_size >> 8), (uint8_t)opt_size, 0, 0};
		uint64_t t = now_ns();
		for (unsigned j = 0; j < opt_size; j++)
			buf[j] = pattern(r + j);
		write_full(id, hdr, 4);
		write_full(id, buf, opt_size);
		read_full(id, hdr, 4);
		read_full(id, buf, opt_size);
		for (unsigned j = 0; j < opt_size; j++)
			if (buf[j] != pattern(r + j))
				die("round %u: reply differs at byte %u", r, j);
		lat[r] = now_ns() - t;
	}
	{
		uint8_t end[4] = {0};
		write_full(id, end, 4);
	}
	qsort(lat, rounds, sizeof(lat[0]), cmp_u64);
	printf("xfer: ok pingpong %u rounds of %u bytes: rtt p50 %.1f us p99 %.1f us\n", rounds,
	       opt_size, lat[rounds / 2] / 1e3, lat[rounds * 99 / 100] / 1e3);
	/* let the last segments and the FIN go before the socket does */
	for (uint64_t t = now_ns() + 20000000u; now_ns() < t;)
		x_turn(true);
	x_close(id);
}

/* ---- UDP request/response ------------------------------------------------------------- */

static void udp_echo(uint16_t port)
{
	static uint8_t buf[65536];
	int id = x_socket(false);

	if (id < 0 || x_bind(id, 0, port) < 0)
		die("cannot bind UDP port %u", port);
	printf("xfer: listening on %u\n", port);
	fflush(stdout);
	while (!stop) {
		uint32_t from;
		uint16_t fport;
		ssize_t n = x_recv(id, buf, sizeof(buf), &from, &fport);
		if (n >= 0) {
			x_send(id, buf, (size_t)n, from, fport);
			continue;
		}
		x_turn(true);
	}
	x_close(id);
}

static void udp_client(uint32_t addr_be32, uint16_t port)
{
	static uint8_t buf[65536], in[65536];
	unsigned retries = 0;
	int id = x_socket(false);

	if (id < 0)
		die("socket");
	for (unsigned r = 0; r < opt_rounds; r++) {
		for (unsigned j = 0; j < opt_size; j++)
			buf[j] = pattern(r * 7 + j);
		buf[0] = (uint8_t)r;
		uint64_t sent_at = 0;
		for (;;) {
			if (!sent_at || now_ns() - sent_at > 200000000u) {
				if (sent_at && ++retries > opt_rounds / 2 + 10)
					die("too many requests lost (%u)", retries);
				ssize_t s = x_send(id, buf, opt_size, addr_be32, port);
				if (s < 0 && s != -EAGAIN)
					die("send: %s", strerror((int)-s));
				sent_at = now_ns();
			}
			ssize_t n = x_recv(id, in, sizeof(in), NULL, NULL);
			if (n == (ssize_t)opt_size && memcmp(in, buf, opt_size) == 0)
				break;
			if (n >= 0 && (n != (ssize_t)opt_size || in[0] != buf[0]))
				continue; /* a late echo of an earlier round */
			if (n >= 0)
				die("round %u: echo differs", r);
			if (stop)
				die("interrupted");
			x_turn(true);
		}
	}
	x_close(id);
	printf("xfer: ok udp %u rounds of %u bytes, %u resent\n", opt_rounds, opt_size, retries);
}

/* ---- main -------------------------------------------------------------------------------- */

static void report(void *arg, enum env_severity sev, const char *msg)
{
	(void)arg;
	fprintf(stderr, "xfer: %s: %s\n", sev == ENV_ERROR ? "error" : "warning", msg);
}

static void rt_cleanup(void)
{
	if (S) {
		stack_rt_close(&rt);
		S = NULL;
	}
}

static void hold(void)
{
	/* keep the stack alive and moving (TIME_WAIT, retransmits) until told to go */
	while (!stop)
		x_turn(true);
}

int main(int argc, char **argv)
{
	struct onr_config cfg;
	struct env_report rep = {report, NULL, 0, 0};
	extern char **environ;
	bool keep = false;
	int opt;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while ((opt = getopt(argc, argv, "+c:b:n:s:u:HK")) != -1) {
		switch (opt) {
		case 'c':
			opt_conns = (unsigned)atoi(optarg);
			break;
		case 'b':
			opt_bytes = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			opt_rounds = (unsigned)atoi(optarg);
			break;
		case 's':
			opt_size = (unsigned)atoi(optarg);
			break;
		case 'u':
			opt_user_timeout = (unsigned)atoi(optarg);
			break;
		case 'H':
			keep = true;
			break;
		case 'K':
			keep_after_failure = true;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind < 2 || opt_conns == 0 || opt_conns > MAX_CONNS || opt_size == 0 ||
	    opt_size > 60000) {
		fprintf(stderr,
			"usage: xfer [-c conns] [-b bytes] [-n rounds] [-s size] [-u ms] [-H] [-K] "
			"stack|kernel MODE [ADDR] [PORT]\n");
		return 2;
	}
	use_stack = strcmp(argv[optind], "stack") == 0;
	if (use_stack) {
		char err[256];
		if (env_config_from_environ(&cfg, environ, &rep) < 0)
			return 2;
		if (stack_rt_open(&rt, &cfg, err, sizeof(err)) < 0) {
			fprintf(stderr, "xfer: %s\n", err);
			return 3;
		}
		S = &rt.stack;
		atexit(rt_cleanup); /* a failed run still returns its device and region */
		fprintf(stderr, "xfer: stack %s on %s (%s)\n", rt.region.hdr->name, rt.ifname,
			rt.stack.link->mode);
	}
	{
		const char *mode = argv[optind + 1];
		char **a = argv + optind + 2;
		int na = argc - optind - 2;
		uint32_t addr = 0;

		if (na >= 2 && inet_pton(AF_INET, a[0], &addr) != 1)
			die("bad address %s", a[0]);
		if (!strcmp(mode, "tcp-server") && na == 1)
			tcp_run(true, 0, (uint16_t)atoi(a[0]));
		else if (!strcmp(mode, "tcp-client") && na == 2)
			tcp_run(false, addr, (uint16_t)atoi(a[1]));
		else if (!strcmp(mode, "pingpong-server") && na == 1)
			pingpong(true, 0, (uint16_t)atoi(a[0]));
		else if (!strcmp(mode, "pingpong-client") && na == 2)
			pingpong(false, addr, (uint16_t)atoi(a[1]));
		else if (!strcmp(mode, "udp-echo") && na == 1)
			udp_echo((uint16_t)atoi(a[0]));
		else if (!strcmp(mode, "udp-client") && na == 2)
			udp_client(addr, (uint16_t)atoi(a[1]));
		else if (!strcmp(mode, "idle") && na == 0 && use_stack)
			keep = true;
		else
			die("unknown mode or arguments: %s", mode);
	}
	fflush(stdout);
	if (use_stack && keep)
		hold();
	return 0;
}
