#!/bin/bash
# tests/integration/test_loss.sh — TCP bulk transfers of 256 MiB each way at once, verified
# byte by byte both ways, while nftables in the peer's namespace loses 1% and 5% of the TCP
# packets at random in each direction (peer_nft_loss: real wire loss both ways), over tap
# and xdp, with the stack as server and as client. Usage: test_loss.sh BUILD
#
# 256 MiB is about 185000 segments each way: at 5% some 9000 of the stack's are lost, and as
# many of the peer's. Measured on a 2-CPU VM: 1% in about 5 s a case (50-60 MB/s each way),
# 5% in 20-26 s (10-13 MB/s); all eight cases in about 2 minutes. LOSS_MIB overrides the
# size (a quicker run by hand).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MIB=${LOSS_MIB:-256}

# loss_case LINK ROLE PERCENT BYTES
loss_case()
{
	local link=$1 role=$2 pct=$3 bytes=$4 dropped
	topo_up "$link"
	peer_nft_loss "$pct"
	tcp_transfer "$role" "$bytes" 1 300
	tcp_check_through "$bytes" 1
	dropped=$(peer_nft_dropped)
	[ "$dropped" -gt 0 ] || fail "nftables dropped nothing"
	# every loss the stack saw was repaired by a retransmission of its own or of the peer's
	stat_at_least "$STACK_NAME" tcp_retransmits 1
	check_pool_full "$STACK_NAME" 10
	FIG="$(rate_of "$STACK_LAST" | awk -v b="$bytes" '{ printf "%s s, %.1f MB/s each way", $1, b / $1 / 1e6 }'), $dropped packets lost, stack: retransmits $(stat "$STACK_NAME" tcp_retransmits), spurious (D-SACK) $(stat "$STACK_NAME" tcp_dsack_rx), RTOs $(stat "$STACK_NAME" tcp_rto_expired), probes $(stat "$STACK_NAME" tcp_tail_loss_probes), ooo_queued $(stat "$STACK_NAME" tcp_ooo_queued)"
	stack_stop
	[ "$STACK_RC" = 0 ] || fail "stack xfer exit $STACK_RC"
	pass "$FIG"
}

require_root
for link in tap xdp; do
	for pct in 1 5; do
		for role in server client; do
			run_case "tcp-loss-$pct%-${MIB}MiB-stack-$role $link" \
				loss_case $link $role $pct $((MIB << 20))
		done
	done
done
finish
