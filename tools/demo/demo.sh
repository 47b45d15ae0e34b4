#!/bin/sh
# tools/demo/demo.sh BUILD_DIR — `make demo`: a stack region with traffic-shaped pool use,
# shown by stackdump as an Onload user would read it, then the receive path flooded to its
# cap (CRITICAL), then every buffer returned and the region removed. Until the preload
# library exists this is the demo: the pool, its accounting and stackdump are real.
set -eu
B=${1:-build}
name="demo-$$"
out=$(mktemp)
pid=

cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -f "$out"
}
trap cleanup EXIT INT TERM

EF_NAME=$name EF_MAX_PACKETS=4096 EF_PREALLOC_PACKETS=256 EF_RXQ_SIZE=256 \
	"$B/tools/demo/region_demo" >"$out" &
pid=$!

wait_for() { # wait_for TEXT: until region_demo has printed it (5 s at most)
	i=0
	until grep -q "$1" "$out"; do
		i=$((i + 1))
		[ "$i" -le 100 ] || { echo "demo: region_demo did not start" >&2; exit 1; }
		sleep 0.05
	done
}

wait_for "ready"
cat "$out"
echo
echo "\$ stackdump            # every stack on this machine"
"$B/tools/stackdump/stackdump" list
echo
echo "\$ stackdump lots $name"
"$B/tools/stackdump/stackdump" lots "$name"
echo
kill -USR1 "$pid"
wait_for "flooded"
echo "--- a receiver that never reads: the receive path grows to EF_MAX_RX_PACKETS ---"
echo "\$ stackdump lots $name | grep pkt_bufs"
"$B/tools/stackdump/stackdump" lots "$name" | grep pkt_bufs
echo
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
tail -n 1 "$out"
exit $rc
