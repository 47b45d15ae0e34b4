#!/usr/bin/env bash
# tests/integration/test_intercept.sh BUILD — tests/intercept/{mt,poll,info}_check under
# libonramp.so.
# mt_check: many threads on one stack, one socket shared by two threads, EINTR and SA_RESTART
# in a blocking receive, a handler making socket calls. poll_check:
# poll, ppoll, select, pselect and epoll (level, edge, one-shot, errors) over accelerated and
# kernel fds, EINTR from a handler, a listener reached through the stack and the kernel, a
# socket accelerated after it joined an epoll set, and errno left alone on kernel fds.
# info_check: TCP_INFO, recvmsg's ancillary data and IP_TOS/IP_TTL from the stack. The
# stack's TAP (198.18.77.0/24) is made in the case's namespace and goes with it.
source "$(dirname "$0")/lib.sh"
require_root
CHECK=$(realpath "$BUILD/tests/intercept/poll_check")
MT=$(realpath "$BUILD/tests/intercept/mt_check")
INFO=$(realpath "$BUILD/tests/intercept/info_check")
LIB=$(realpath "$BUILD/libonramp.so")

poll_case() # EF_POLL_USEC
{
	STACK_NS=onrit$CASE_ID-a
	netns_add "$STACK_NS"
	ip netns exec "$STACK_NS" env EF_LINK=tap EF_POLL_USEC="$1" EF_TAP_ADDR=198.18.77.2/24 \
		EF_NAME="it$CASE_ID-pc" LD_PRELOAD="$LIB" timeout 60 "$CHECK" > "$CASE_DIR/pc.out" 2>&1 ||
		fail "$(grep -m3 '^FAIL' "$CASE_DIR/pc.out" | tr '\n' ' ') $(tail -n 1 "$CASE_DIR/pc.out")"
	pass "$(grep -c '^ok' "$CASE_DIR/pc.out") checks"
}

# threads and signals: tests/intercept/mt_check
mt_case()
{
	STACK_NS=onrit$CASE_ID-a
	netns_add "$STACK_NS"
	ip netns exec "$STACK_NS" env EF_LINK=tap EF_TAP_ADDR=198.18.77.2/24 \
		EF_NAME="it$CASE_ID-mt" LD_PRELOAD="$LIB" timeout 120 "$MT" > "$CASE_DIR/mt.out" 2>&1 ||
		fail "$(grep -m3 '^FAIL' "$CASE_DIR/mt.out" | tr '\n' ' ') $(tail -n 1 "$CASE_DIR/mt.out")"
	pass "$(grep -c '^ok' "$CASE_DIR/mt.out") checks"
}

# TCP_INFO, ancillary data, IP_TOS/IP_TTL: tests/intercept/info_check
info_case()
{
	STACK_NS=onrit$CASE_ID-a
	netns_add "$STACK_NS"
	ip netns exec "$STACK_NS" env EF_LINK=tap EF_TAP_ADDR=198.18.77.2/24 \
		EF_NAME="it$CASE_ID-in" LD_PRELOAD="$LIB" timeout 60 "$INFO" > "$CASE_DIR/in.out" 2>&1 ||
		fail "$(grep -m3 '^FAIL' "$CASE_DIR/in.out" | tr '\n' ' ') $(tail -n 1 "$CASE_DIR/in.out")"
	pass "$(grep -c '^ok' "$CASE_DIR/in.out") checks"
}

run_case "socket-info" info_case
run_case "threads-and-signals" mt_case
run_case "poll-select-epoll" poll_case 0
run_case "poll-select-epoll EF_POLL_USEC=50" poll_case 50
finish
