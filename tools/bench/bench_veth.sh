#!/bin/bash
# tools/bench/bench_veth.sh — onramp on the xdp link against kernel sockets, over one veth
# pair whose far end is the Linux kernel in another namespace. One run measures TCP
# ping-pong latency (p50, p99) and bulk throughput (both ways at once) with xfer, once on
# the stack and once on kernel sockets from the same namespace to the same peer, and prints
# the medians side by side with their ratio.
#
#   tools/bench/bench_veth.sh [BUILD_DIR]        (make bench; needs root, skips without)
#   BENCH_VETH_RUNS=3 BENCH_VETH_ROUNDS=20000 BENCH_VETH_BYTES=1073741824   overrides
#
# Topology: namespace A holds va (198.18.N.1/24), B holds vb (198.18.N.2/24). The stack
# attaches AF_XDP to va and uses va's address; the peer in B is always `xfer kernel`.
# Everything it creates carries the shell's pid and goes on every exit path.
# shellcheck disable=SC2317 # functions reached through traps and "$@" look unreachable to it
set -euo pipefail

BUILD=${1:-build}
RUNS=${BENCH_VETH_RUNS:-3}
ROUNDS=${BENCH_VETH_ROUNDS:-20000}
BYTES=${BENCH_VETH_BYTES:-$((1 << 30))}
XFER=$BUILD/tests/integration/xfer

if [ "$(id -u)" -ne 0 ]; then
	echo "bench_veth: skipped: needs root (network namespaces, veth, AF_XDP)"
	exit 0
fi
for tool in ip ethtool timeout; do
	if ! command -v "$tool" >/dev/null; then
		echo "bench_veth: skipped: $tool is not installed"
		exit 0
	fi
done
if [ ! -x "$XFER" ]; then
	echo "bench_veth: $XFER is missing: run make $XFER" >&2
	exit 1
fi

# shellcheck source=tools/bench/veth_lib.sh
. "$(dirname "$0")/veth_lib.sh"
veth_up bench_veth b v bv
PORT=20000 # every run gets a fresh port, so no run meets a previous one's TIME_WAIT
RUN=0
RC=0

# start NS LOG CMD...: run CMD in namespace NS in the background, output in LOG. timeout
# bounds a hung run; `ip netns exec` and timeout exec in place, so $! is ours to kill.
start() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$ns" timeout -k 2 120 "$@" >"$log" 2>&1 &
	PIDS+=($!)
	LAST=$!
}

wait_listening() {
	local log=$1 i
	for ((i = 0; i < 100; i++)); do
		grep -q "listening on" "$log" && return 0
		sleep 0.05
	done
	return 1
}

# xfer_in_a BACKEND ARGS...: the command line of the side under test in namespace A.
xfer_in_a() {
	local back=$1
	shift
	if [ "$back" = stack ]; then
		echo env EF_LINK=xdp EF_INTERFACE="$VA" EF_NAME="$STACK_NAME-$RUN" "$XFER" "$@"
	else
		echo "$XFER" "$@"
	fi
}

# pair SERVER_NS CLIENT_NS "SERVER_CMD" "CLIENT_CMD": one server and one client (@PORT@ is
# a fresh port). On success A_LOG names the log of the side in namespace A; on failure
# returns 1 with both logs on stderr. Not for $(...): the pids must reach cleanup.
pair() {
	local sns=$1 cns=$2 scmd=$3 ccmd=$4 slog clog spid ok=0
	RUN=$((RUN + 1))
	PORT=$((PORT + 1))
	scmd=${scmd//@PORT@/$PORT}
	ccmd=${ccmd//@PORT@/$PORT}
	slog=$LOGS/$RUN.server
	clog=$LOGS/$RUN.client
	: >"$clog"
	# shellcheck disable=SC2086 # the commands are word lists built above
	start "$sns" "$slog" $scmd
	spid=$LAST
	if wait_listening "$slog"; then
		# shellcheck disable=SC2086
		start "$cns" "$clog" $ccmd
		wait "$LAST" || ok=1
	else
		ok=1
	fi
	# a server whose client failed would wait for it until timeout's limit
	[ "$ok" -eq 0 ] || kill "$spid" 2>/dev/null || true
	wait "$spid" || ok=1
	if [ "$ok" -ne 0 ] || ! grep -q "xfer: ok" "$slog" || ! grep -q "xfer: ok" "$clog"; then
		{
			echo "bench_veth: run $RUN failed: server in $sns: $scmd"
			sed 's/^/  | /' "$slog"
			echo "  client in $cns: $ccmd"
			sed 's/^/  | /' "$clog"
		} >&2
		return 1
	fi
	if [ "$sns" = "$NSA" ]; then A_LOG=$slog; else A_LOG=$clog; fi
}

# pingpong BACKEND SIZE: VALS="p50 p99" in µs, client in A (BACKEND), kernel server in B.
pingpong() {
	pair "$NSB" "$NSA" "$XFER kernel pingpong-server @PORT@" \
		"$(xfer_in_a "$1" -n "$ROUNDS" -s "$2" "$1" pingpong-client "$ADDR_B" @PORT@)" || return 1
	VALS=$(sed -n 's/.*rtt p50 \([0-9.]*\) us p99 \([0-9.]*\) us.*/\1 \2/p' "$A_LOG")
}

# bulk BACKEND fwd|rev: VALS=Gbit/s each way as measured in A. fwd: A is the client; rev: A
# serves and the kernel in B connects.
bulk() {
	if [ "$2" = fwd ]; then
		pair "$NSB" "$NSA" "$XFER -b $BYTES kernel tcp-server @PORT@" \
			"$(xfer_in_a "$1" -b "$BYTES" "$1" tcp-client "$ADDR_B" @PORT@)" || return 1
	else
		pair "$NSA" "$NSB" "$(xfer_in_a "$1" -b "$BYTES" "$1" tcp-server @PORT@)" \
			"$XFER -b $BYTES kernel tcp-client $ADDR_A @PORT@" || return 1
	fi
	VALS=$(sed -n 's/.*, \([0-9.]*\) Gbit\/s each way.*/\1/p' "$A_LOG")
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

# The figures of one metric, for each back end, RUNS times, kernel and stack alternating so
# that a drift in machine load hits both alike. Results: $LOGS/<key>.<backend>.<column>.
measure() {
	local key=$1 i back c v
	shift
	for ((i = 0; i < RUNS; i++)); do
		for back in kernel stack; do
			VALS=
			if "$@" "$back" && [ -n "$VALS" ]; then
				read -r -a v <<<"$VALS"
				for c in "${!v[@]}"; do echo "${v[$c]}" >>"$LOGS/$key.$back.$c"; done
			else
				echo fail >>"$LOGS/$key.$back.fail"
			fi
		done
	done
}
pp_1() { pingpong "$1" 1; }
pp_64() { pingpong "$1" 64; }
bulk_fwd() { bulk "$1" fwd; }
bulk_rev() { bulk "$1" rev; }

# row LABEL KEY COLUMN lower|higher: one line of the table.
row() {
	local label=$1 key=$2 col=$3 better=$4 k s ratio back v
	for back in kernel stack; do
		v=fail
		if [ ! -e "$LOGS/$key.$back.fail" ] && [ -e "$LOGS/$key.$back.$col" ]; then
			v=$(median <"$LOGS/$key.$back.$col")
		fi
		if [ "$back" = kernel ]; then k=$v; else s=$v; fi
	done
	if [ "$k" = fail ] || [ "$s" = fail ]; then
		ratio=-
		RC=1
	elif [ "$better" = lower ]; then
		ratio=$(awk -v k="$k" -v s="$s" 'BEGIN { printf "%.2f", (s > 0 ? k / s : 0) }')
	else
		ratio=$(awk -v k="$k" -v s="$s" 'BEGIN { printf "%.2f", (k > 0 ? s / k : 0) }')
	fi
	printf "%-40s %10s %10s %7s\n" "$label" "$k" "$s" "$ratio"
}

echo "bench_veth: $(uname -r), $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
# Ping-pong spins on both sides and so wants both CPUs of a small machine: say when others
# are using them, as the figures then measure the scheduler more than the stacks.
if awk '{ exit !($1 > 0.5) }' /proc/loadavg; then
	echo "bench_veth: warning: the machine is busy (load above 0.5): latency figures may be noisy"
fi
echo "bench_veth: $RUNS runs of each; ping-pong $ROUNDS rounds; bulk $BYTES bytes each way"
measure pp1 pp_1
measure pp64 pp_64
measure bfwd bulk_fwd
measure brev bulk_rev

MODE=$(grep -ho '(.*copy)' "$LOGS"/*.client "$LOGS"/*.server 2>/dev/null | head -1 || true)
echo
echo "onramp: xfer stack, EF_LINK=xdp on $VA ${MODE:-}; kernel: xfer kernel, same namespace,"
echo "same peer (xfer kernel in the other namespace, peer TX offload off). Median of $RUNS."
echo "ratio > 1: onramp better (latency: kernel/onramp; throughput: onramp/kernel)"
printf "%-40s %10s %10s %7s\n" metric kernel onramp ratio
row "tcp ping-pong 1 B rtt p50 (us)" pp1 0 lower
row "tcp ping-pong 1 B rtt p99 (us)" pp1 1 lower
row "tcp ping-pong 64 B rtt p50 (us)" pp64 0 lower
row "tcp ping-pong 64 B rtt p99 (us)" pp64 1 lower
row "tcp bulk, A connects (Gbit/s each way)" bfwd 0 higher
row "tcp bulk, A accepts (Gbit/s each way)" brev 0 higher
exit $RC
