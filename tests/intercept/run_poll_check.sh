#!/bin/sh
# tests/intercept/run_poll_check.sh [BUILD] — builds poll_check and runs it under
# libonramp.so in a network namespace of its own (the stack's tap is made there, and goes
# with it). Needs root; skips clearly otherwise.
set -eu
BUILD=${1:-build}
LIB=$(realpath "$BUILD/libonramp.so")
BIN=$BUILD/tests/intercept/poll_check
NS=onr-pollck-$$

[ "$(id -u)" = 0 ] || { echo "skip poll_check: needs root (netns, tap)"; exit 0; }
[ -c /dev/net/tun ] || { echo "skip poll_check: no /dev/net/tun"; exit 0; }
mkdir -p "$(dirname "$BIN")"
cc -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o "$BIN" tests/intercept/poll_check.c -lpthread

ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT INT TERM
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" env EF_LINK=tap ${EF_POLL_USEC:+EF_POLL_USEC=$EF_POLL_USEC} EF_TAP_ADDR=10.77.0.2/24 LD_PRELOAD="$LIB" \
	timeout 60 "$BIN"
