/*
 * shim/intercept/sockcall.h — helpers the socket and data calls share (socket.c, io.c).
 */
#ifndef ONRAMP_INTERCEPT_SOCKCALL_H
#define ONRAMP_INTERCEPT_SOCKCALL_H

#include "intercept.h"

/* An AF_INET sockaddr into the stack's form: 0, -EINVAL (short), -EAFNOSUPPORT. */
int onr_sockaddr_in(const struct sockaddr *a, socklen_t len, struct sock_addr *out);
/* The stack's form into a sockaddr_in, truncated to *len; *len becomes its full size. */
void onr_sockaddr_out(const struct sock_addr *in, struct sockaddr *a, socklen_t *len);

/*
 * Run op under the stack lock until it stops saying -EAGAIN, as a blocking call does: poll
 * the stack once when it would block, spin EF_POLL_USEC, then sleep on the socket for
 * `events` (SOCK_EV_*) until timeout_ns passes (0: no limit; then -EAGAIN, as SO_RCVTIMEO).
 * nonblock: -EAGAIN at once. -EINTR when a signal handler ran (restarted by the kernel
 * itself under SA_RESTART without a timeout, as a blocking socket call is).
 */
long onr_blocking(const struct onr_fd *e, bool nonblock, unsigned events, int64_t timeout_ns,
		  long (*op)(struct stack *s, const struct onr_fd *e, void *arg), void *arg);

/* Bytes FIONREAD reports (TCP: queued bytes; UDP: the next datagram's length). Lock held. */
int onr_sock_inq(struct stack *s, uint32_t id);

/* A pending UDP socket's first sendto/sendmsg goes to `to`: accelerate it when the stack's
 * link leads there (true), else leave it to the kernel (false). */
bool onr_udp_decide(int fd, struct onr_fd *e, const struct sock_addr *to);

#endif
