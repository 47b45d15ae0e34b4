#!/bin/bash
# tests/integration/test_loss.sh — TCP bulk transfers, verified byte by byte both ways, while
# nftables in the peer's namespace drops 1% and 5% of the TCP packets at random in each
# direction, over tap and xdp. Usage: test_loss.sh BUILD
#
# Sizes: 64 MiB at 1% (about 46000 segments each way, 460 of the stack's lost); 4 MiB at 5%
# (about 2900 segments each way, 145 of the stack's lost). The stack's sending side recovers
# from much of 5% loss only by retransmission timeouts (RTO_MIN 200 ms), at about 0.3 MB/s:
# 256 MiB would take many minutes, so the 5% runs are small enough to keep `make integration`
# within its budget. Drops in the peer's output chain reach its TCP as failed sends, which it
# repeats (see peer_nft): the stack's receive side sees few holes to repair.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# loss_case LINK ROLE PERCENT BYTES
loss_case()
{
	local link=$1 role=$2 pct=$3 bytes=$4 dropped
	topo_up "$link"
	peer_nft "meta l4proto tcp numgen random mod 100 < $pct counter drop"
	tcp_transfer "$role" "$bytes" 1 120
	tcp_check_through "$bytes" 1
	dropped=$(peer_nft_dropped)
	[ "$dropped" -gt 0 ] || fail "nftables dropped nothing"
	# every loss the stack saw was repaired by a retransmission of its own or of the peer's
	stat_at_least "$STACK_NAME" tcp_retransmits 1
	check_pool_full "$STACK_NAME" 10
	FIG="$(rate_of "$STACK_LAST" | awk -v b="$bytes" '{ printf "%s s, %.1f MB/s each way", $1, b / $1 / 1e6 }'), $dropped packets dropped, retransmits $(stat "$STACK_NAME" tcp_retransmits), RTOs $(stat "$STACK_NAME" tcp_rto_expired), ooo_queued $(stat "$STACK_NAME" tcp_ooo_queued)"
	stack_stop
	[ "$STACK_RC" = 0 ] || fail "stack xfer exit $STACK_RC"
	pass "$FIG"
}

require_root
for link in tap xdp; do
	run_case "tcp-loss-1%-64MiB-stack-server $link" loss_case $link server 1 $((64 << 20))
	run_case "tcp-loss-1%-64MiB-stack-client $link" loss_case $link client 1 $((64 << 20))
	run_case "tcp-loss-5%-4MiB-stack-server $link" loss_case $link server 5 $((4 << 20))
	run_case "tcp-loss-5%-4MiB-stack-client $link" loss_case $link client 5 $((4 << 20))
done
finish
