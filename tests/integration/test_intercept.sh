#!/usr/bin/env bash
# tests/integration/test_intercept.sh BUILD — the programs of tests/intercept under
# libonramp.so, each on a TAP the stack makes (198.18.77.0/24) in the case's namespace:
# mt_check: many threads on one stack, one socket shared by two threads, EINTR and SA_RESTART
# in a blocking receive and accept, a handler making socket calls, a child closing every fd.
# poll_check: poll, ppoll, select, pselect and epoll (level, edge, one-shot, errors) over
# accelerated and kernel fds, EINTR from a handler, a listener reached through the stack and
# the kernel, a socket accelerated after it joined an epoll set, errno left alone on kernel fds.
# epoll_fork_check: one epoll set shared across fork (a child's ADD, close, one-shot report
# and DEL seen by the parent; pre-forked workers on one set with an exclusive listener).
# info_check: TCP_INFO, recvmsg's ancillary data and IP_TOS/IP_TTL from the stack.
# exec_check: accelerated sockets across exec (a forked child's new image, and the process's
# own), a close-on-exec one closed by the exec.
# oob_check: TCP urgent data (MSG_OOB, SIOCATMARK, POLLPRI, SO_OOBINLINE) against a kernel peer.
source "$(dirname "$0")/lib.sh"
require_root
LIB=$(realpath "$BUILD/libonramp.so")

# prog_case PROGRAM EF_POLL_USEC: runs $BUILD/tests/intercept/PROGRAM, which prints one
# "ok"/"FAIL" line per check and exits non-zero after any FAIL.
prog_case()
{
	local prog=$1 out=$CASE_DIR/$1.out
	STACK_NS=onrit$CASE_ID-a
	netns_add "$STACK_NS"
	ip netns exec "$STACK_NS" env EF_LINK=tap EF_POLL_USEC="$2" EF_TAP_ADDR=198.18.77.2/24 \
		EF_NAME="it$CASE_ID-${prog%_check}" LD_PRELOAD="$LIB" timeout 120 \
		"$(realpath "$BUILD/tests/intercept/$prog")" > "$out" 2>&1 ||
		fail "$(grep -m3 '^FAIL' "$out" | tr '\n' ' ') $(tail -n 1 "$out")"
	pass "$(grep -c '^ok' "$out") checks"
}

run_case "socket-info" prog_case info_check 0
run_case "threads-and-signals" prog_case mt_check 0
run_case "poll-select-epoll" prog_case poll_check 0
run_case "poll-select-epoll EF_POLL_USEC=50" prog_case poll_check 50
run_case "epoll-shared-across-fork" prog_case epoll_fork_check 0
run_case "epoll-shared-across-fork EF_POLL_USEC=50" prog_case epoll_fork_check 50
run_case "exec" prog_case exec_check 0
run_case "urgent-data" prog_case oob_check 0
finish
