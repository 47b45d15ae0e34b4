/*
 * tests/intercept/check.h — what the programs run under libonramp.so share: the addresses of
 * the tap the stack makes (tests/integration/test_intercept.sh), one result line per check,
 * and how to tell an accelerated socket from outside the library.
 */
#ifndef ONRAMP_TESTS_INTERCEPT_CHECK_H
#define ONRAMP_TESTS_INTERCEPT_CHECK_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KERNEL_IP "198.18.77.1" /* the tap's kernel side: the peers */
#define STACK_IP  "198.18.77.2"

static int failures;

/* "ok   <what>" or "FAIL <what>"; the program exits 1 after any FAIL. */
#define CHECK(cond, ...)                 \
	do {                             \
		if (cond) {              \
			printf("ok   "); \
		} else {                 \
			printf("FAIL "); \
			failures++;      \
		}                        \
		printf(__VA_ARGS__);     \
		printf("\n");            \
	} while (0)

static inline struct sockaddr_in sin_of(const char *ip, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

/* An accelerated socket's kernel twin is never connected: the raw syscall tells. */
static inline int is_accelerated(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);

	return syscall(SYS_getpeername, fd, &a, &l) < 0 && errno == ENOTCONN;
}

#endif
