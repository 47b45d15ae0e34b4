#!/bin/bash
# tools/bench/bench_apps.sh — unmodified programs with and without `onramp` (design §10), over
# one veth pair whose far end is the Linux kernel in another namespace. In one run: sockperf
# TCP and UDP ping-pong latency (p50, p99 round trip), iperf3 throughput both ways,
# redis-benchmark requests/s and nginx requests/s (wrk, or a curl loop without it). Each
# server runs in namespace A once on kernel sockets and once under build/tools/onramp/onramp
# on the xdp link; the client is always the kernel in B, with the same parameters. The table
# gives the medians side by side with their ratio.
#
#   tools/bench/bench_apps.sh [BUILD_DIR]        (make bench; needs root, skips without)
#   BENCH_APPS_RUNS=3 BENCH_APPS_SECS=3 BENCH_APPS_REDIS_N=100000   overrides
#
# The side under onramp is always the server: the kernel client in B does the measuring, so
# both back ends are timed by the same code. sockperf's server runs with `--profile=latency`
# (it is the latency test); the throughput servers run with the default profile. A stack run
# counts only if `stackdump --json lots` showed, before the server stopped, that the traffic
# went through the stack (TCP passive opens, UDP datagrams both ways): a silent fallback to
# kernel sockets is an error, not a figure. AF_XDP attaches one stack per interface, so the
# runs go one at a time and each waits for its server (and nginx's workers) to exit.
# Everything it creates carries the shell's pid and goes on every exit path.
# shellcheck disable=SC2317 # functions reached through traps and "$@" look unreachable to it
set -euo pipefail

BUILD=${1:-build}
RUNS=${BENCH_APPS_RUNS:-3}
SECS=${BENCH_APPS_SECS:-3}
REDIS_N=${BENCH_APPS_REDIS_N:-100000}
ONRAMP=$BUILD/tools/onramp/onramp
SDUMP=$BUILD/tools/stackdump/stackdump
PATH=$PATH:/usr/sbin:/sbin # nginx lives in /usr/sbin

if [ "$(id -u)" -ne 0 ]; then
	echo "bench_apps: skipped: needs root (network namespaces, veth, AF_XDP)"
	exit 0
fi
for tool in ip ethtool timeout jq ss; do
	if ! command -v "$tool" >/dev/null; then
		echo "bench_apps: skipped: $tool is not installed"
		exit 0
	fi
done
for f in "$ONRAMP" "$SDUMP" "$BUILD/libonramp.so"; do
	if [ ! -e "$f" ]; then
		echo "bench_apps: $f is missing: run make all" >&2
		exit 1
	fi
done
ONRAMP=$(realpath "$ONRAMP")
SDUMP=$(realpath "$SDUMP")
# An application that is not installed leaves its rows as "-" (make deps installs them all).
have() { command -v "$1" >/dev/null; }

# shellcheck source=tools/bench/veth_lib.sh
. "$(dirname "$0")/veth_lib.sh"
veth_up bench_apps a x ba
PORT=21000 # every run gets a fresh port, so no run meets a previous one's TIME_WAIT
RUN=0
RC=0

# server_start BACKEND PROFILE CMD...: the server in namespace A, in the background, output
# in $LOGS/$RUN.server; SPID is the program's own pid (ip netns exec, env and the launcher
# all exec). BACKEND stack: under onramp on the xdp link as stack $SNAME, with --profile=PROFILE
# unless PROFILE is "-".
server_start() {
	local back=$1 prof=$2
	shift 2
	SLOG=$LOGS/$RUN.server
	SNAME=$STACK_NAME-$RUN
	if [ "$back" = stack ]; then
		local popt=()
		[ "$prof" = - ] || popt=(--profile="$prof")
		ip netns exec "$NSA" env EF_LINK=xdp EF_INTERFACE="$VA" EF_NAME="$SNAME" \
			"$ONRAMP" "${popt[@]}" -- "$@" >"$SLOG" 2>&1 &
	else
		ip netns exec "$NSA" "$@" >"$SLOG" 2>&1 &
	fi
	SPID=$!
	PIDS+=("$SPID")
}

# server_stop [SIGNAL]: stops the server of this run and waits until it (and so its stack,
# whose AF_XDP socket the next run needs) is gone.
server_stop() {
	local pid keep=()
	stop_pid "$SPID" "${1:-TERM}"
	for pid in "${PIDS[@]}"; do
		[ "$pid" = "$SPID" ] || keep+=("$pid")
	done
	PIDS=("${keep[@]}")
}

# server_ready BACKEND tcp|udp: waits until the server listens on $PORT: in the kernel's
# socket table, or for a stack in the stack's (a stack binds in the kernel too, but listens
# there only on a wildcard address).
server_ready() {
	local back=$1 proto=$2 i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$SPID" 2>/dev/null || break
		if [ "$back" = kernel ]; then
			[ -z "$(ip netns exec "$NSA" ss -Hln --"$proto" "sport = :$PORT")" ] || return 0
		elif "$SDUMP" --json lots "$SNAME" 2>/dev/null | jq -e --argjson p "$PORT" \
			--arg t "$proto" '.stacks[0].sockets.rows[]? | select(.lport == $p and
			.proto == $t)' >/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	run_failed "the server did not come up on $proto port $PORT"
	return 1
}

# through_stack tcp|udp MIN: for a stack run, the proof that the traffic went through the
# stack, read while the server still runs: at least MIN TCP passive opens (and segments both
# ways), or MIN UDP datagrams in and out. Says why on stderr when not.
through_stack() {
	local proto=$1 min=$2 json c
	json=$("$SDUMP" --json lots "$SNAME" 2>&1) || {
		echo "bench_apps: run $RUN: stackdump cannot read stack $SNAME: $json" >&2
		return 1
	}
	if [ "$proto" = tcp ]; then
		c=$(jq -c '.stacks[0].counters | {tcp_passive_opens, tcp_rx_segs, tcp_tx_segs}' <<<"$json")
		jq -e --argjson m "$min" '.stacks[0].counters | .tcp_passive_opens >= $m and
			.tcp_rx_segs > 0 and .tcp_tx_segs > 0' <<<"$json" >/dev/null && return 0
	else
		c=$(jq -c '.stacks[0].counters | {udp_rx, udp_tx}' <<<"$json")
		jq -e --argjson m "$min" '.stacks[0].counters | .udp_rx >= $m and .udp_tx >= $m' \
			<<<"$json" >/dev/null && return 0
	fi
	echo "bench_apps: run $RUN: NOT through the stack (kernel fallback?): $c" >&2
	return 1
}

# client LOG SECONDS CMD...: the kernel client in namespace B, bounded by timeout.
client() {
	local log=$1 secs=$2
	shift 2
	ip netns exec "$NSB" timeout -k 2 "$secs" "$@" >"$log" 2>&1
}

# run_failed WHY LOG...: says why this run gave no figure, with the logs, on stderr.
run_failed() {
	local f
	echo "bench_apps: run $RUN failed: $1" >&2
	shift
	for f in "$@" "$SLOG"; do
		[ -s "$f" ] || continue
		echo "  $(basename "$f"):" >&2
		tail -n 8 "$f" | tr '\r' '\n' | grep -v '^ *$' | tail -n 6 | sed 's/^/  | /' >&2
	done
}

next_run() {
	RUN=$((RUN + 1))
	PORT=$((PORT + 1))
}

# ---- the programs: each sets VALS (one figure per column) or returns 1 -------------------------

# sockperf BACKEND tcp|udp: VALS="p50 p99", round trip in µs, 64-byte messages.
sockperf_pp() {
	local back=$1 proto=$2 t=() clog ok=0
	next_run
	[ "$proto" = udp ] || t=(--tcp)
	clog=$LOGS/$RUN.client
	server_start "$back" latency sockperf server "${t[@]}" -i "$ADDR_A" -p "$PORT"
	server_ready "$back" "$proto" || ok=1
	if [ "$ok" = 0 ] && ! client "$clog" $((SECS + 30)) sockperf ping-pong "${t[@]}" \
		-i "$ADDR_A" -p "$PORT" -t "$SECS" -m 64 --full-rtt; then
		run_failed "sockperf $proto client, server on $back" "$clog"
		ok=1
	fi
	if [ "$ok" = 0 ] && [ "$back" = stack ]; then through_stack "$proto" 1 || ok=1; fi
	server_stop
	[ "$ok" = 0 ] || return 1
	VALS="$(sed -n 's/.*percentile 50\.000 = *\([0-9.]*\).*/\1/p' "$clog")"
	VALS="$VALS $(sed -n 's/.*percentile 99\.000 = *\([0-9.]*\).*/\1/p' "$clog")"
}

# iperf3 BACKEND: VALS="in out", Gbit/s received by A (B sends) and sent by A (-R).
iperf3_bulk() {
	local back=$1 ok=0 dir log v=()
	next_run
	server_start "$back" - iperf3 -4 -s -p "$PORT"
	server_ready "$back" tcp || ok=1
	for dir in "" -R; do
		[ "$ok" = 0 ] || break
		log=$LOGS/$RUN.client$dir
		if client "$log" $((SECS + 30)) iperf3 -4 -J -c "$ADDR_A" -p "$PORT" -t "$SECS" ${dir:+"$dir"}; then
			v+=("$(jq -r '.end.sum_received.bits_per_second / 1e9 * 100 | round / 100' "$log")")
		else
			run_failed "iperf3 client $dir, server on $back" "$log"
			ok=1
		fi
		sleep 0.5 # the server takes one test at a time: let it close this one
	done
	# a control and a data connection per test
	if [ "$ok" = 0 ] && [ "$back" = stack ]; then through_stack tcp 4 || ok=1; fi
	server_stop
	[ "$ok" = 0 ] || return 1
	VALS="${v[*]}"
}

# redis BACKEND: VALS="set get" in requests/s.
redis_rps() {
	local back=$1 ok=0 clog
	next_run
	clog=$LOGS/$RUN.client
	mkdir -p "$LOGS/redis"
	server_start "$back" - redis-server --port "$PORT" --bind 0.0.0.0 --protected-mode no \
		--save '' --appendonly no --dir "$LOGS/redis" --daemonize no
	server_ready "$back" tcp || ok=1
	if [ "$ok" = 0 ] && ! client "$clog" 300 redis-benchmark -h "$ADDR_A" -p "$PORT" \
		-t get,set -n "$REDIS_N" -c 50 -q; then
		run_failed "redis-benchmark, server on $back" "$clog"
		ok=1
	fi
	if [ "$ok" = 0 ] && [ "$back" = stack ]; then through_stack tcp 50 || ok=1; fi
	server_stop
	[ "$ok" = 0 ] || return 1
	# -q rewrites its progress line with \r; the last state of each is the result
	VALS="$(tr '\r' '\n' <"$clog" | sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p')"
	VALS="$VALS $(tr '\r' '\n' <"$clog" | sed -n 's/^GET: \([0-9.]*\) requests per second.*/\1/p')"
}

# nginx BACKEND: VALS=requests/s for a 1 KiB file, keep-alive, 50 connections (wrk) or 4
# curl processes fetching it over and over (one connection each).
nginx_rps() {
	local back=$1 ok=0 clog d=$LOGS/nginx t0 t1 n
	next_run
	clog=$LOGS/$RUN.client
	mkdir -p "$d/www" "$d/tmp"
	head -c 1024 /dev/urandom >"$d/www/f"
	cat >"$d/nginx.conf" <<-EOF
		user root;
		daemon off;
		master_process on;
		worker_processes 2;
		pid $d/nginx.pid;
		error_log $d/error.log;
		events { worker_connections 1024; }
		http {
			access_log off;
			client_body_temp_path $d/tmp;
			proxy_temp_path $d/tmp;
			fastcgi_temp_path $d/tmp;
			uwsgi_temp_path $d/tmp;
			scgi_temp_path $d/tmp;
			server { listen $PORT; root $d/www; }
		}
	EOF
	server_start "$back" - nginx -c "$d/nginx.conf" -p "$d"
	server_ready "$back" tcp || ok=1
	if [ "$ok" = 0 ] && [ "$NGINX_CLIENT" = wrk ]; then
		if ! client "$clog" $((SECS + 30)) wrk -t 2 -c 50 -d "$SECS" "http://$ADDR_A:$PORT/f" ||
			grep -Eq 'Non-2xx|Socket errors' "$clog"; then
			run_failed "wrk, nginx on $back" "$clog"
			ok=1
		fi
		VALS=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$clog")
	elif [ "$ok" = 0 ]; then
		t0=$(date +%s.%N)
		# shellcheck disable=SC2016 # expanded by the inner shell
		if ! client "$clog" 120 bash -c 'for c in 1 2 3 4; do
				curl -s -o /dev/null -w "%{http_code}\n" $(printf "$1 %.0s" $(seq 500)) &
			done; wait' _ "http://$ADDR_A:$PORT/f"; then
			run_failed "curl loop, nginx on $back" "$clog"
			ok=1
		fi
		t1=$(date +%s.%N)
		n=$(grep -c '^200$' "$clog" || true)
		[ "$n" = 2000 ] || { run_failed "curl loop: $n of 2000 answers were 200" "$clog"; ok=1; }
		VALS=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
	fi
	if [ "$ok" = 0 ] && [ "$back" = stack ]; then through_stack tcp 4 || ok=1; fi
	server_stop QUIT # graceful: the workers finish, then the master exits
	[ "$ok" = 0 ] || return 1
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

# measure KEY PROGRAM FUNCTION ARGS...: the figures of one program, for each back end, RUNS
# times, kernel and stack alternating so that a drift in machine load hits both alike.
# Results: $LOGS/<key>.<backend>.<column>; <key>.<backend>.fail marks a failed run, and
# <key>.skip a program that is not installed.
measure() {
	local key=$1 prog=$2 i back c v
	shift 2
	if ! have "$prog"; then
		echo "bench_apps: $prog is not installed (make deps): its rows are skipped" >&2
		: >"$LOGS/$key.skip"
		return
	fi
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
sp_tcp() { sockperf_pp "$1" tcp; }
sp_udp() { sockperf_pp "$1" udp; }

# row LABEL KEY COLUMN lower|higher: one line of the table.
row() {
	local label=$1 key=$2 col=$3 better=$4 k s ratio back v
	if [ -e "$LOGS/$key.skip" ]; then
		printf "%-46s %10s %10s %7s\n" "$label" - - "skipped"
		return
	fi
	for back in kernel stack; do
		v=fail
		if [ ! -e "$LOGS/$key.$back.fail" ] && [ -e "$LOGS/$key.$back.$col" ]; then
			v=$(median <"$LOGS/$key.$back.$col")
		fi
		if [ "$back" = kernel ]; then k=$v; else s=$v; fi
	done
	if [ "$k" = fail ] || [ "$s" = fail ]; then
		ratio=FAILED
		RC=1
	elif [ "$better" = lower ]; then
		ratio=$(awk -v k="$k" -v s="$s" 'BEGIN { printf "%.2f", (s > 0 ? k / s : 0) }')
	else
		ratio=$(awk -v k="$k" -v s="$s" 'BEGIN { printf "%.2f", (k > 0 ? s / k : 0) }')
	fi
	printf "%-46s %10s %10s %7s\n" "$label" "$k" "$s" "$ratio"
}

START=$(date +%s)
NGINX_CLIENT=wrk
have wrk || NGINX_CLIENT="curl loop"
echo "bench_apps: $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
if awk '{ exit !($1 > 0.5) }' /proc/loadavg; then
	echo "bench_apps: warning: the machine is busy (load above 0.5): figures may be noisy"
fi
echo "bench_apps: $RUNS runs of each; sockperf and iperf3 ${SECS} s, redis-benchmark -n $REDIS_N, nginx $NGINX_CLIENT"
measure sptcp sockperf sp_tcp
measure spudp sockperf sp_udp
measure ip3 iperf3 iperf3_bulk
measure redis redis-server redis_rps
measure nginx nginx nginx_rps

echo
echo "Servers in namespace A, kernel clients in B over veth (peer TX offload off). onramp:"
echo "the same server under onramp, EF_LINK=xdp on $VA (sockperf with --profile=latency);"
echo "every onramp run checked with stackdump to have gone through the stack. Median of $RUNS."
echo "ratio > 1: onramp better (latency: kernel/onramp; throughput: onramp/kernel)"
printf "%-46s %10s %10s %7s\n" metric kernel onramp ratio
row "sockperf tcp ping-pong 64 B, rtt p50 (us)" sptcp 0 lower
row "sockperf tcp ping-pong 64 B, rtt p99 (us)" sptcp 1 lower
row "sockperf udp ping-pong 64 B, rtt p50 (us)" spudp 0 lower
row "sockperf udp ping-pong 64 B, rtt p99 (us)" spudp 1 lower
row "iperf3, server in A receives (Gbit/s)" ip3 0 higher
row "iperf3 -R, server in A sends (Gbit/s)" ip3 1 higher
row "redis-benchmark SET, 50 conns (requests/s)" redis 0 higher
row "redis-benchmark GET, 50 conns (requests/s)" redis 1 higher
row "nginx 2 workers, 1 KiB file, $NGINX_CLIENT (req/s)" nginx 0 higher
echo "bench_apps: took $(($(date +%s) - START)) s"
exit $RC
