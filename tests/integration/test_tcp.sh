#!/bin/bash
# tests/integration/test_tcp.sh — TCP between the stack and the Linux kernel, over tap and
# xdp: connections opened from each side, 256 MiB each way verified byte by byte (xfer checks
# its pattern), MTU 9000 on both ends, and 1000 concurrent connections. Usage: test_tcp.sh BUILD
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BULK=$((256 << 20))

# tcp_case LINK ROLE BYTES CONNS [MTU]: ROLE is the stack's (server: the kernel connects to
# it; client: it connects to the kernel). Each of CONNS connections carries BYTES each way.
tcp_case()
{
	local link=$1 role=$2 bytes=$3 conns=$4 mtu=${5:-1500} rx
	topo_up "$link" "$mtu"
	tcp_transfer "$role" "$bytes" "$conns" 120
	tcp_check_through "$bytes" "$conns"
	check_pool_full "$STACK_NAME" 10
	rx=$(stat "$STACK_NAME" tcp_rx_segs)
	if [ "$mtu" -gt 1500 ]; then
		# fewer segments than 1500-byte frames could carry: the jumbo frames were used
		[ "$rx" -lt "$(segs_for $((bytes * conns)) 1500)" ] ||
			fail "tcp_rx_segs $rx: no more than 1460 bytes per segment at MTU $mtu"
	fi
	FIG=$(rate_of "$STACK_LAST")
	# xfer gives a multi-connection run's rate per connection; the aggregate reads better
	[ "$conns" = 1 ] || FIG=$(awk -v c="$conns" -v b="$bytes" '{ printf "%s s, %.2f Gbit/s all connections", $1, c * b * 8 / $1 / 1e9 }' <<< "$FIG")
	FIG="$FIG, tcp_rx_segs $rx, tcp_tx_segs $(stat "$STACK_NAME" tcp_tx_segs), retransmits $(stat "$STACK_NAME" tcp_retransmits)"
	stack_stop
	[ "$STACK_RC" = 0 ] || fail "stack xfer exit $STACK_RC"
	pass "$FIG"
}

require_root
for link in tap xdp; do
	run_case "tcp-stack-server-256MiB $link" tcp_case $link server $BULK 1
	run_case "tcp-stack-client-256MiB $link" tcp_case $link client $BULK 1
	run_case "tcp-mtu9000-64MiB $link" tcp_case $link server $((64 << 20)) 1 9000
	run_case "tcp-1000-conns-server $link" tcp_case $link server 65536 1000
	run_case "tcp-1000-conns-client $link" tcp_case $link client 65536 1000
done
finish
