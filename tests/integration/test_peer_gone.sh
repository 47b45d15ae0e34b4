#!/bin/bash
# tests/integration/test_peer_gone.sh — a peer that disappears mid-transfer, over tap and xdp.
# The stack sends a long transfer with TCP_USER_TIMEOUT 3 s (xfer -u); then either the link is
# deleted (xdp: the veth pair, from the peer's side, which takes the stack's end with it; tap:
# the TAP device) or the peer falls silent (nftables drops everything on its device). The
# stack must end the connection by its user timeout — xfer's FAILED line says "Connection
# timed out" within the timeout plus SLACK — and every buffer must come back to the pool,
# even those a deleted device will never complete. Usage: test_peer_gone.sh BUILD
set -euo pipefail
. "$(dirname "$0")/lib.sh"

USER_TIMEOUT_MS=3000
SLACK_MS=2000
LONG=$((8 << 30)) # far more than the transfer carries before the cut

cut_link()
{
	if [ "$LINK" = xdp ]; then
		ip -n "$PEER_NS" link del "$PEER_IF"
	else
		ip -n "$STACK_NS" link del "$STACK_IF"
	fi
}

cut_silent()
{
	peer_nft "counter drop"
}

# gone_case LINK HOW: HOW is link (cut_link) or silent (cut_silent).
gone_case()
{
	local link=$1 how=$2 t0 t1 ms i line
	topo_up "$link"
	peer_start srv -b $LONG kernel tcp-server 5001
	stack_start cli -b $LONG -u $USER_TIMEOUT_MS -K stack tcp-client "$PEER_IP" 5001
	# cut once the transfer is well under way: data in flight and queued both ways
	for ((i = 0; i < 100; i++)); do
		[ "$(stat "$STACK_NAME" tcp_rx_segs)" -lt 5000 ] || break
		sleep 0.05
	done
	[ "$(stat "$STACK_NAME" tcp_rx_segs)" -ge 5000 ] || fail "transfer did not start"
	t0=$(date +%s%N)
	"cut_$how"
	wait_line "$STACK_OUT" "^xfer: (ok|FAILED)" $(((USER_TIMEOUT_MS + SLACK_MS) / 1000 + 5)) \
		"$STACK_PID"
	t1=$(date +%s%N)
	ms=$(((t1 - t0) / 1000000))
	line=$(grep -E "^xfer: (ok|FAILED)" "$STACK_OUT")
	case $line in
	*"Connection timed out"*) ;;
	*) fail "after $ms ms the stack said: $line" ;;
	esac
	[ $ms -le $((USER_TIMEOUT_MS + SLACK_MS)) ] ||
		fail "connection ended after $ms ms, more than $USER_TIMEOUT_MS ms + $SLACK_MS ms"
	stat_at_least "$STACK_NAME" tcp_timeouts 1
	check_pool_full "$STACK_NAME" 5
	FIG="ended $ms ms after the cut: ${line#xfer: FAILED }; tcp_timeouts $(stat "$STACK_NAME" tcp_timeouts), RTOs $(stat "$STACK_NAME" tcp_rto_expired), link_tx_errors $(stat "$STACK_NAME" link_tx_errors)"
	stack_stop
	[ "$STACK_RC" = 1 ] || fail "stack xfer exit $STACK_RC, expected 1 (failed transfer)"
	pass "$FIG"
}

require_root
for link in tap xdp; do
	run_case "peer-gone-link-deleted $link" gone_case $link link
	run_case "peer-gone-silent $link" gone_case $link silent
done
finish
