#!/usr/bin/env bash
# tests/integration/test_redis_sockperf.sh BUILD — redis and sockperf under `onramp` (design
# §10): redis-server driven by redis-benchmark from the peer, redis-cli against a kernel
# redis-server, and sockperf ping-pong over TCP and UDP with onramp as the server and as the
# client. Every case checks its answers, proves from `stackdump --json` that its traffic went
# through the stack (opens, segments, datagrams), and a server's case ends with the pool full.
#
# A client's stack goes away when the client exits, so its figures are sampled while it runs
# (app_watch): each client runs for about 2 s. On xdp only one AF_XDP stack may hold the
# interface, so no case ever runs two programs under onramp at once.
source "$(dirname "$0")/lib.sh"
require_root
PATH=$PATH:/usr/sbin
for t in redis-server redis-cli redis-benchmark sockperf; do
	command -v "$t" > /dev/null || skip_all "needs $t (make deps)"
done

REDIS_PORT=6390
SP_PORT=11111

# ---- helpers of this file ------------------------------------------------------------------

# tail_of FILE: the last two lines of a program's output, colours stripped, on one line.
tail_of()
{
	sed 's/\x1b\[[0-9;]*m//g' "$1" | tr '\r' '\n' | grep -v '^ *$' | tail -n 2 | tr '\n' ' ' || true
}

# snap NAME: the stack's state now, into $CASE_DIR/NAME.json (read back with sampled).
snap()
{
	"$SDUMP" --json lots "it$CASE_ID-$1" > "$CASE_DIR/$1.json" || fail "no stack it$CASE_ID-$1"
}

# wait_sock NAME PROTO PORT PID: waits until stack NAME has a PROTO socket on local PORT (a
# listener for tcp): the program under onramp is served by the stack and ready.
wait_sock()
{
	local name=$1 proto=$2 port=$3 pid=$4
	for _ in $(seq 200); do
		"$SDUMP" --json lots "it$CASE_ID-$name" 2> /dev/null | jq -e --arg p "$proto" \
			--argjson port "$port" '.stacks[0].sockets.rows[]? | select(.proto == $p and
			.lport == $port and (.proto != "tcp" or .state == "LISTEN"))' > /dev/null &&
			return 0
		kill -0 "$pid" 2> /dev/null || fail "$name ended before its $proto socket on $port: $(tail_of "$CASE_DIR/$name.out")"
		sleep 0.05
	done
	fail "stack $name has no $proto socket on port $port after 10 s"
}

# counter_at_least NAME COUNTER MIN: a counter of NAME's last sample is at least MIN.
counter_at_least()
{
	local v
	v=$(sampled "$1" ".counters.$2")
	[ "$v" -ge "$3" ] || fail "$1: $2 is $v, expected at least $3"
}

# peer_redis_start: a kernel redis-server in the peer's namespace on $PEER_IP:$REDIS_PORT.
peer_redis_start()
{
	ip netns exec "$PEER_NS" redis-server --bind "$PEER_IP" --port "$REDIS_PORT" --save '' \
		--appendonly no --protected-mode no --dir "$CASE_DIR" > "$CASE_DIR/kredis.out" 2>&1 &
	PIDS+=($!)
	wait_line "$CASE_DIR/kredis.out" "Ready to accept connections" 10 $!
}

# sockperf_summary FILE: "p50 X, p99 Y, avg Z us, N round trips" from a client's output
# (sockperf reports half the round trip as latency); sets SP_TRIPS (replies received, warm-up
# included: what crossed the wire).
sockperf_summary()
{
	local f=$1 clean p50 p99 avg
	clean=$(sed 's/\x1b\[[0-9;]*m//g' "$f")
	SP_TRIPS=$(sed -n 's/.*\[Total Run\].*ReceivedMessages=\([0-9]*\).*/\1/p' <<< "$clean")
	p50=$(sed -n 's/.*percentile 50\.000 = *\([0-9.]*\).*/\1/p' <<< "$clean")
	p99=$(sed -n 's/.*percentile 99\.000 = *\([0-9.]*\).*/\1/p' <<< "$clean")
	avg=$(sed -n 's/.*avg-latency=\([0-9.]*\).*/\1/p' <<< "$clean")
	[ -n "$SP_TRIPS" ] && [ -n "$p50" ] && [ -n "$p99" ] ||
		fail "no sockperf summary in $(basename "$f"): $(tail_of "$f")"
	[ "$SP_TRIPS" -gt 1000 ] || fail "only $SP_TRIPS round trips in 2 s"
	grep -q 'dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0' \
		<<< "$clean" || fail "sockperf: $(grep 'dropped messages' <<< "$clean")"
	SP_FIGS="p50 $p50 us, p99 $p99 us, avg $avg us, $SP_TRIPS round trips"
}

# sockperf_through NAME PROTO OPENS DIVISOR: NAME's sample shows the round trips crossing the
# stack, at least SP_TRIPS / DIVISOR each way (a client's last sample can miss the end), and
# for tcp the connection it opened (OPENS: active or passive).
sockperf_through()
{
	local name=$1 proto=$2 opens=$3 min=$((SP_TRIPS / $4))
	if [ "$proto" = tcp ]; then
		counter_at_least "$name" "tcp_${opens}_opens" 1
		counter_at_least "$name" tcp_rx_segs "$min"
		counter_at_least "$name" tcp_tx_segs "$min"
	else
		counter_at_least "$name" udp_rx "$min"
		counter_at_least "$name" udp_tx "$min"
	fi
}

# ---- cases -----------------------------------------------------------------------------------

redis_server_case() # redis-server under onramp, redis-benchmark and redis-cli from the peer
{
	app_topo "$1"
	local clients=20 n=20000 tests=(SET GET INCR LPUSH) t rate rates="" val got
	onramp_start redis "$CASE_DIR/redis.out" redis-server --bind 0.0.0.0 --port "$REDIS_PORT" \
		--save '' --appendonly no --protected-mode no --dir "$CASE_DIR" --logfile ''
	wait_sock redis tcp "$REDIS_PORT" "$APP_PID"
	ip netns exec "$PEER_NS" timeout 120 redis-benchmark -h "$STACK_IP" -p "$REDIS_PORT" \
		-t set,get,incr,lpush -n "$n" -c "$clients" -q > "$CASE_DIR/bench.out" 2>&1 ||
		fail "redis-benchmark exit $?: $(tail_of "$CASE_DIR/bench.out")"
	for t in "${tests[@]}"; do
		rate=$(tr '\r' '\n' < "$CASE_DIR/bench.out" |
			sed -n "s/^$t: \([0-9.]*\) requests per second.*/\1/p" | tail -n 1)
		[ -n "$rate" ] || fail "redis-benchmark: no $t result: $(tail_of "$CASE_DIR/bench.out")"
		rates+="${rates:+, }$t ${rate%.*}"
	done
	# values round-trip: a short one, and one of 256 KiB (many segments each way)
	val=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	got=$(ip netns exec "$PEER_NS" timeout 10 redis-cli -h "$STACK_IP" -p "$REDIS_PORT" \
		SET rt "$val") || fail "redis-cli SET exit $?"
	[ "$got" = OK ] || fail "SET answered '$got'"
	got=$(ip netns exec "$PEER_NS" timeout 10 redis-cli -h "$STACK_IP" -p "$REDIS_PORT" \
		GET rt) || fail "redis-cli GET exit $?"
	[ "$got" = "$val" ] || fail "GET gave '$got', SET was '$val'"
	od -An -N131072 -tx1 /dev/urandom | tr -d ' \n' > "$CASE_DIR/big"
	ip netns exec "$PEER_NS" timeout 10 redis-cli -h "$STACK_IP" -p "$REDIS_PORT" -x \
		SET big < "$CASE_DIR/big" > /dev/null || fail "redis-cli SET big exit $?"
	ip netns exec "$PEER_NS" timeout 10 redis-cli -h "$STACK_IP" -p "$REDIS_PORT" --raw \
		GET big > "$CASE_DIR/big.got" || fail "redis-cli GET big exit $?"
	# --raw prints the value and a newline
	cmp -s <(cat "$CASE_DIR/big"; echo) "$CASE_DIR/big.got" ||
		fail "the 256 KiB value came back different ($(wc -c < "$CASE_DIR/big.got") bytes)"
	snap redis
	# redis-benchmark opens its clients afresh for every test; every request and answer is a
	# segment of its own (no pipelining)
	counter_at_least redis tcp_passive_opens $((clients * ${#tests[@]}))
	counter_at_least redis tcp_rx_segs $((n * ${#tests[@]}))
	counter_at_least redis tcp_tx_segs $((n * ${#tests[@]}))
	check_pool_full "it$CASE_ID-redis"
	kill -0 "$APP_PID" 2> /dev/null || fail "redis-server ended: $(tail_of "$CASE_DIR/redis.out")"
	pass "requests/s: $rates; $(sampled redis .counters.tcp_passive_opens) connections; 256 KiB value round-tripped"
}

redis_client_case() # redis-cli under onramp, 200 paced INCRs to a kernel redis-server
{
	app_topo "$1"
	local got
	peer_redis_start
	app_watch rcli
	onramp_in_stack_ns rcli timeout 30 redis-cli -h "$PEER_IP" -p "$REDIS_PORT" -r 200 -i 0.01 \
		INCR k > "$CASE_DIR/rcli.out" 2>&1 || fail "redis-cli exit $?: $(tail_of "$CASE_DIR/rcli.out")"
	app_unwatch
	[ "$(wc -l < "$CASE_DIR/rcli.out")" = 200 ] && [ "$(tail -n 1 "$CASE_DIR/rcli.out")" = 200 ] ||
		fail "redis-cli printed $(wc -l < "$CASE_DIR/rcli.out") lines, last '$(tail -n 1 "$CASE_DIR/rcli.out")'"
	got=$(ip netns exec "$PEER_NS" timeout 10 redis-cli -h "$PEER_IP" -p "$REDIS_PORT" GET k) ||
		fail "kernel redis-cli GET exit $?"
	[ "$got" = 200 ] || fail "k is '$got' after 200 INCRs"
	# the last sample can miss the last requests (sampled every 50 ms)
	counter_at_least rcli tcp_active_opens 1
	counter_at_least rcli tcp_tx_segs 150
	counter_at_least rcli tcp_rx_segs 150
	pass "k = 200, $(sampled rcli .counters.tcp_tx_segs) segments out in the last sample"
}

# sockperf_server_case LINK PROTO: sockperf server under onramp on the stack's address, a
# kernel ping-pong client from the peer for 2 s
sockperf_server_case()
{
	app_topo "$1"
	local proto=$2 opt=() rc=0
	[ "$proto" = tcp ] && opt=(--tcp)
	onramp_start sps "$CASE_DIR/sps.out" sockperf sr "${opt[@]}" -i "$STACK_IP" -p "$SP_PORT"
	wait_sock sps "$proto" "$SP_PORT" "$APP_PID"
	ip netns exec "$PEER_NS" timeout 30 sockperf pp "${opt[@]}" -i "$STACK_IP" -p "$SP_PORT" \
		-t 2 > "$CASE_DIR/spc.out" 2>&1 || rc=$?
	# the server's own words first: the client only sees that its answers stopped
	kill -0 "$APP_PID" 2> /dev/null || fail "sockperf server ended: $(tail_of "$CASE_DIR/sps.out")"
	[ "$rc" = 0 ] || fail "kernel sockperf client exit $rc: $(tail_of "$CASE_DIR/spc.out")"
	sockperf_summary "$CASE_DIR/spc.out"
	snap sps
	sockperf_through sps "$proto" passive 1
	check_pool_full "it$CASE_ID-sps"
	pass "$SP_FIGS"
}

# sockperf_client_case LINK PROTO: kernel sockperf server in the peer's namespace, the
# ping-pong client under onramp for 2 s
sockperf_client_case()
{
	app_topo "$1"
	local proto=$2 opt=()
	[ "$proto" = tcp ] && opt=(--tcp)
	ip netns exec "$PEER_NS" sockperf sr "${opt[@]}" -i "$PEER_IP" -p "$SP_PORT" \
		> "$CASE_DIR/ksps.out" 2>&1 &
	PIDS+=($!)
	wait_line "$CASE_DIR/ksps.out" "to block on socket" 10 $!
	sleep 0.2
	app_watch spc
	onramp_in_stack_ns spc timeout 30 sockperf pp "${opt[@]}" -i "$PEER_IP" -p "$SP_PORT" \
		-t 2 > "$CASE_DIR/spc.out" 2>&1 || fail "sockperf client exit $?: $(tail_of "$CASE_DIR/spc.out")"
	app_unwatch
	sockperf_summary "$CASE_DIR/spc.out"
	sockperf_through spc "$proto" active 2
	pass "$SP_FIGS"
}

for link in ${ONRAMP_TEST_LINKS:-tap xdp}; do
	run_case "redis-server $link" redis_server_case $link
	run_case "redis-cli $link" redis_client_case $link
	run_case "sockperf-server-tcp $link" sockperf_server_case $link tcp
	run_case "sockperf-server-udp $link" sockperf_server_case $link udp
	run_case "sockperf-client-tcp $link" sockperf_client_case $link tcp
	run_case "sockperf-client-udp $link" sockperf_client_case $link udp
done
finish
