#!/bin/bash
# tests/integration/test_udp_icmp.sh — ICMP echo from Linux to the stack, and UDP
# request/response with the stack in either role, over tap and xdp. Usage: test_udp_icmp.sh BUILD
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROUNDS=5000
SIZE=1200

icmp_case()
{
	local link=$1 out rtt
	topo_up "$link"
	stack_start idle stack idle
	out=$(ip netns exec "$PEER_NS" ping -n -q -c 3 -i 0.2 -W 2 "$STACK_IP") ||
		fail "ping $STACK_IP: $(tail -n 2 <<< "$out" | tr '\n' ' ')"
	rtt=$(sed -n 's|^rtt min/avg/max/mdev = [0-9.]*/\([0-9.]*\)/.*|avg rtt \1 ms|p' <<< "$out")
	if [ "$link" = xdp ]; then
		# The XDP program steers only the stack's TCP and UDP flows; ICMP goes to the kernel
		# that shares the interface and its address (steer.bpf.c), so the kernel answers.
		stat_is "$STACK_NAME" icmp_rx 0
		check_pool_full "$STACK_NAME"
		stack_stop
		pass "$rtt; answered by the kernel sharing $STACK_IF: steer.bpf.c leaves ICMP to it, stack icmp_rx 0"
		return
	fi
	stat_at_least "$STACK_NAME" icmp_rx 3
	stat_at_least "$STACK_NAME" icmp_tx_echo_reply 3
	check_pool_full "$STACK_NAME"
	FIG="$rtt, icmp_rx $(stat "$STACK_NAME" icmp_rx), icmp_tx_echo_reply $(stat "$STACK_NAME" icmp_tx_echo_reply)"
	stack_stop
	[ "$STACK_RC" = 0 ] || fail "stack xfer exit $STACK_RC"
	pass "$FIG"
}

# udp_case LINK ROLE: ROLE is the stack's — server (udp-echo, the kernel asks) or client.
udp_case()
{
	local link=$1 role=$2 t0 t1 last
	topo_up "$link"
	t0=$(date +%s%N)
	if [ "$role" = server ]; then
		stack_start echo stack udp-echo 7001
		wait_line "$STACK_OUT" "^xfer: listening" 10 "$STACK_PID"
		peer_run 120 -n $ROUNDS -s $SIZE kernel udp-client "$STACK_IP" 7001
		last=$PEER_LAST
	else
		peer_start echo kernel udp-echo 7001
		stack_start cli -n $ROUNDS -s $SIZE -H -K stack udp-client "$PEER_IP" 7001
		stack_result 120
		last=$STACK_LAST
	fi
	t1=$(date +%s%N)
	stat_at_least "$STACK_NAME" udp_rx $ROUNDS
	stat_at_least "$STACK_NAME" udp_tx $ROUNDS
	check_pool_full "$STACK_NAME"
	FIG="$ROUNDS rounds of $SIZE bytes in $(((t1 - t0) / 1000000)) ms, ${last##*, }, udp_rx $(stat "$STACK_NAME" udp_rx), udp_tx $(stat "$STACK_NAME" udp_tx)"
	stack_stop
	[ "$STACK_RC" = 0 ] || fail "stack xfer exit $STACK_RC"
	pass "$FIG"
}

require_root
for link in tap xdp; do
	run_case "icmp-echo $link" icmp_case $link
	run_case "udp-stack-echo $link" udp_case $link server
	run_case "udp-stack-client $link" udp_case $link client
done
finish
