# tests/integration/lib.sh — sourced by every tests/integration/test_*.sh (design §10).
#
# Each case runs in its own subshell (run_case) that builds a topology of its own — network
# namespaces, a veth pair or a TAP device — runs the stack-side `xfer stack ...` and a Linux
# peer `xfer kernel ...`, proves from `stackdump --json` that the traffic went through the
# stack and that every buffer came back, and tears everything down on every exit path. A case
# prints exactly one line: "ok <case> (<figures>)" or "FAILED <case>: <why>".
#
# Topologies (topo_up LINK [MTU]):
#   tap  one namespace A; the stack creates TAP device $STACK_IF in A with address
#        $STACK_IP, A's kernel (address $PEER_IP on the same device) is the peer.
#   xdp  namespaces A and B joined by a veth pair; the stack attaches AF_XDP to the end in A
#        and shares its address ($STACK_IP); the peer runs in B ($PEER_IP).
# Loss and outages are made with nftables in the peer's namespace, on the peer's device
# ($PEER_NS, $PEER_IF), so that the stack's side is never filtered by the kernel it shares.
set -euo pipefail

BUILD=${1:-${ONRAMP_BUILD:-build}}
XFER=$(realpath "$BUILD/tests/integration/xfer")
SDUMP=$(realpath "$BUILD/tools/stackdump/stackdump")
ONRAMP=$(realpath "$BUILD/tools/onramp/onramp")
TESTS_FAILED=0
TESTS_PASSED=0

# ---- skipping -----------------------------------------------------------------------------

skip_all()
{
	echo "skip $(basename "$0"): $*"
	exit 0
}

# Skips the whole script, with exit 0, where it cannot run: not root, no namespaces, no TAP,
# or a tool missing. A failure after this point is a real failure.
require_root()
{
	[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, TAP, AF_XDP)"
	local t
	for t in ip jq nft ethtool ping timeout; do
		command -v "$t" > /dev/null || skip_all "needs $t (make deps)"
	done
	[ -x "$XFER" ] && [ -x "$SDUMP" ] || skip_all "build $XFER and $SDUMP first (make all)"
	[ -c /dev/net/tun ] || skip_all "no /dev/net/tun"
	local probe="onrit-probe$$"
	ip netns add "$probe" 2> /dev/null || skip_all "cannot create network namespaces"
	ip netns del "$probe"
}

# ---- one case ------------------------------------------------------------------------------

# run_case NAME FUNCTION ARGS...: runs FUNCTION in a subshell with errexit on (the caller's
# errexit is lifted around it, or a failing subshell would end the whole script), cleans up
# whatever it made, and prints its one result line.
run_case()
{
	local name=$1 why rc
	shift
	CASE_WHY=$(mktemp /tmp/onrit-why.XXXXXX)
	set +e
	(
		# -E: functions and $(...) inherit the ERR trap; the first reason written wins
		set -eE
		CASE=$name
		CASE_ID=$BASHPID
		CASE_DIR=$(mktemp -d /tmp/onrit-case.XXXXXX)
		PIDS=()
		NETNS=()
		trap case_cleanup EXIT
		trap 'exit 130' INT TERM
		trap '[ -s "$CASE_WHY" ] || echo "line $LINENO: \"$BASH_COMMAND\" failed" > "$CASE_WHY"' ERR
		"$@"
	)
	rc=$?
	set -e
	why=$(cat "$CASE_WHY")
	rm -f "$CASE_WHY"
	if [ $rc = 0 ]; then
		TESTS_PASSED=$((TESTS_PASSED + 1))
	else
		TESTS_FAILED=$((TESTS_FAILED + 1))
		echo "FAILED $name: ${why:-exit $rc}"
	fi
	[ $rc != 130 ] || exit 130
}

# Called by a case on success: the one "ok" line.
pass()
{
	echo "ok $CASE ($*)"
}

# Called by a case on failure: the reason goes to run_case, which prints it.
fail()
{
	echo "$*" > "$CASE_WHY"
	exit 1
}

# Each script ends with this: its exit status says whether every case passed.
finish()
{
	[ "$TESTS_FAILED" = 0 ]
}

# Stops what the case started (only the pids it recorded), removes its namespaces (and with
# them its veths, TAPs and nftables tables) and the regions its stacks left.
case_cleanup()
{
	local rc=$? p ns
	trap - ERR
	set +e
	[ $rc = 0 ] || case_keep
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2> /dev/null
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2> /dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2> /dev/null
		wait "$p" 2> /dev/null
	done
	for ns in "${NETNS[@]}"; do
		ip netns del "$ns" 2> /dev/null
	done
	rm -f /dev/shm/onramp-"$(id -u)"-it"$CASE_ID"-*
	rm -rf "$CASE_DIR"
}

# A failed case leaves what explains it under $BUILD/tests/integration/failed/<case>/: the
# xfer outputs and each of its stacks as stackdump saw it at the end.
case_keep()
{
	local keep f
	keep=$BUILD/tests/integration/failed/${CASE// /-}
	rm -rf "$keep" && mkdir -p "$keep" || return
	cp "$CASE_DIR"/*.out "$keep"/ 2> /dev/null
	for f in "$CASE_DIR"/*.out; do
		f=$(basename "$f" .out)
		dump "it$CASE_ID-$f" > "$keep/$f.json" 2> /dev/null || rm -f "$keep/$f.json"
	done
	cp "$CASE_WHY" "$keep/why" 2> /dev/null
}

# ---- topology ------------------------------------------------------------------------------

netns_add()
{
	ip netns add "$1"
	NETNS+=("$1")
	ip -n "$1" link set lo up
}

# topo_up LINK [MTU]: sets LINK, STACK_NS, PEER_NS, STACK_IP, PEER_IP, PEER_IF, STACK_IF and
# STACK_ENV (the EF_ variables of the stack's xfer). Addresses are in 198.18.0.0/15 and live
# only in the case's namespaces.
topo_up()
{
	LINK=$1
	MTU=${2:-1500}
	STACK_NS=onrit$CASE_ID-a
	netns_add "$STACK_NS"
	case $LINK in
	tap)
		PEER_NS=$STACK_NS
		STACK_IF=itt$CASE_ID
		PEER_IF=$STACK_IF
		STACK_IP=198.18.7.2
		PEER_IP=198.18.7.1
		STACK_ENV=(EF_LINK=tap EF_TAP_NAME="$STACK_IF" EF_TAP_ADDR="$STACK_IP/24"
			   EF_MTU="$MTU")
		;;
	xdp)
		PEER_NS=onrit$CASE_ID-b
		netns_add "$PEER_NS"
		STACK_IF=itva$CASE_ID
		PEER_IF=itvb$CASE_ID
		STACK_IP=198.18.8.1
		PEER_IP=198.18.8.2
		ip link add "$STACK_IF" netns "$STACK_NS" mtu "$MTU" type veth \
			peer name "$PEER_IF" netns "$PEER_NS" mtu "$MTU"
		ip -n "$STACK_NS" addr add "$STACK_IP/24" dev "$STACK_IF"
		ip -n "$PEER_NS" addr add "$PEER_IP/24" dev "$PEER_IF"
		ip -n "$STACK_NS" link set "$STACK_IF" up
		ip -n "$PEER_NS" link set "$PEER_IF" up
		# the stack checks every checksum: the peer must finish its own (platform notes)
		ip netns exec "$PEER_NS" ethtool -K "$PEER_IF" tx off > /dev/null
		STACK_ENV=(EF_LINK=xdp EF_INTERFACE="$STACK_IF")
		;;
	*)
		fail "unknown link $LINK"
		;;
	esac
}

# peer_nft RULE...: one nftables rule, applied both ways on the peer's device in the peer's
# namespace (for tap the device is the TAP, so only the stack's traffic is filtered). Matching
# by name, the rules may come before the stack makes its TAP. A drop in the input chain is
# wire loss to the stack's packets. A drop in the output chain is reported to the peer's TCP
# as a failed send, which it repeats: the stack mostly sees the delay, rarely a hole.
peer_nft()
{
	ip netns exec "$PEER_NS" nft -f - <<- EOF
		table inet onrit {
			chain in { type filter hook input priority 0; iifname "$PEER_IF" $* ; }
			chain out { type filter hook output priority 0; oifname "$PEER_IF" $* ; }
		}
	EOF
}

# peer_nft_loss PERCENT: random loss of TCP packets on the wire, both ways. The stack's
# packets are dropped in the peer's input chain. The peer's own cannot be dropped on their
# way out: any drop on the sending host (output chain, netdev egress, qdisc) is reported to
# Linux's TCP as a failed send (NET_XMIT_DROP), which it just repeats. So in the netdev
# egress hook of the peer's device their destination is rewritten to an address nobody
# holds (in 198.18.0.0/15): the send succeeds, and the stack (tap) or the kernel it shares
# the device with (xdp) discards the packet, a loss the peer learns of only from the stack.
# Egress chains may name a device that does not exist yet (the stack's TAP).
peer_nft_loss()
{
	local match="meta l4proto tcp numgen random mod 100 < $1 counter"
	ip netns exec "$PEER_NS" nft -f - <<- EOF
		table inet onrit {
			chain in { type filter hook input priority 0; iifname "$PEER_IF" $match drop; }
		}
		table netdev onrit_eg {
			chain eg {
				type filter hook egress device "$PEER_IF" priority 0;
				ip daddr $STACK_IP $match ip daddr set 198.19.255.254;
			}
		}
	EOF
}

# What the rules dropped (or sent nowhere), every chain of the peer's namespace together.
peer_nft_dropped()
{
	ip netns exec "$PEER_NS" nft -j list ruleset |
		jq '[.nftables[] | .rule? // empty | .expr[] | .counter? // empty | .packets] | add // 0'
}

# ---- processes -----------------------------------------------------------------------------

# wait_line FILE REGEX SECONDS [PID]: waits until a line of FILE matches; fails on timeout or
# when PID ended first.
wait_line()
{
	local file=$1 re=$2 secs=$3 pid=${4:-} i
	for ((i = 0; i < secs * 20; i++)); do
		grep -Eq "$re" "$file" 2> /dev/null && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2> /dev/null; then
			grep -Eq "$re" "$file" 2> /dev/null && return 0
			fail "process ended before \"$re\": $(tail -n 2 "$file" | tr '\n' ' ')"
		fi
		sleep 0.05
	done
	fail "no \"$re\" within $secs s: $(tail -n 2 "$file" | tr '\n' ' ')"
}

# stack_start NAME XFER_ARGS...: starts the stack-side xfer in the stack's namespace as
# region it<case>-NAME; sets STACK_PID and STACK_OUT. Returns once the stack is up (its
# region alive, and the TAP addressed).
stack_start()
{
	local name=$1 i
	shift
	STACK_NAME=it$CASE_ID-$name
	STACK_OUT=$CASE_DIR/$name.out
	ip netns exec "$STACK_NS" env "${STACK_ENV[@]}" EF_NAME="$STACK_NAME" \
		"$XFER" "$@" > "$STACK_OUT" 2>&1 &
	STACK_PID=$!
	PIDS+=("$STACK_PID")
	wait_line "$STACK_OUT" "^xfer: stack " 20 "$STACK_PID"
	for ((i = 0; i < 100; i++)); do
		"$SDUMP" --json list | jq -e --arg n "$STACK_NAME" \
			'.stacks[] | select(.name == $n and .alive)' > /dev/null && break
		sleep 0.05
	done
	if [ "$LINK" = tap ]; then
		local got
		got=$(ip -n "$STACK_NS" -4 -br addr show "$STACK_IF" | awk '{ print $3 }')
		[ "$got" = "$PEER_IP/24" ] || fail "TAP $STACK_IF has address '$got', not $PEER_IP/24"
	fi
}

# stack_stop: SIGTERM to the stack-side xfer; STACK_RC is its exit status. Its region must be
# gone afterwards.
stack_stop()
{
	kill -TERM "$STACK_PID"
	STACK_RC=0
	wait "$STACK_PID" || STACK_RC=$?
	[ ! -e "/dev/shm/onramp-$(id -u)-$STACK_NAME" ] || fail "region $STACK_NAME left behind"
}

# peer_start NAME XFER_ARGS...: a kernel-side xfer in the background (servers); sets PEER_PID
# and PEER_OUT and waits for its listening line when it is a server.
peer_start()
{
	local name=$1
	shift
	PEER_OUT=$CASE_DIR/peer-$name.out
	ip netns exec "$PEER_NS" "$XFER" "$@" > "$PEER_OUT" 2>&1 &
	PEER_PID=$!
	PIDS+=("$PEER_PID")
	case " $* " in
	*" tcp-server "* | *" udp-echo "* | *" pingpong-server "*)
		wait_line "$PEER_OUT" "^xfer: listening" 10 "$PEER_PID"
		;;
	esac
}

# peer_run SECONDS XFER_ARGS...: a kernel-side xfer in the foreground; PEER_LAST is its last
# line; fails unless it ended "ok".
peer_run()
{
	local secs=$1 rc=0
	shift
	PEER_OUT=$CASE_DIR/peer-run.out
	ip netns exec "$PEER_NS" timeout -k 2 "$secs" "$XFER" "$@" > "$PEER_OUT" 2>&1 || rc=$?
	PEER_LAST=$(tail -n 1 "$PEER_OUT")
	[ $rc = 0 ] || fail "peer xfer exit $rc: $PEER_LAST"
}

# ---- what stackdump says -------------------------------------------------------------------

dump()
{
	"$SDUMP" --json lots "$1"
}

# stat NAME COUNTER: one counter of a running stack (names as in shim/abi/stats.def).
stat()
{
	local v
	v=$(dump "$1" | jq -er --arg c "$2" '.stacks[0].counters[$c]') ||
		fail "stackdump has no counter $2 for $1"
	echo "$v"
}

# stat_at_least NAME COUNTER MIN: the counter is at least MIN (traffic went through the stack).
stat_at_least()
{
	local v
	v=$(stat "$1" "$2")
	[ "$v" -ge "$3" ] || fail "$2 is $v, expected at least $3"
}

stat_is()
{
	local v
	v=$(stat "$1" "$2")
	[ "$v" -eq "$3" ] || fail "$2 is $v, expected $3"
}

# check_pool_full NAME [SECONDS]: every buffer is back — nothing queued on sockets, nothing in
# the TX ring, nothing held elsewhere — while the stack runs (free + rx_ring == alloc, as the
# link keeps its receive ring posted). Waits up to SECONDS (5) for closing connections to be
# acknowledged; fails with the pool's figures.
check_pool_full()
{
	local name=$1 secs=${2:-5} pool i
	for ((i = 0; i < secs * 10; i++)); do
		pool=$(dump "$name" | jq -c '.stacks[0].pool')
		jq -e '.rx_queued == 0 and .tx_queued == 0 and .tx_ring == 0 and .other == 0 and
			.free + .rx_ring == .alloc and .consistent' <<< "$pool" > /dev/null && return 0
		sleep 0.1
	done
	fail "pool not full after $secs s: $(jq -c '{alloc, free, rx_ring, rx_queued, tx_queued,
		tx_ring, other}' <<< "$pool")"
}

# segs_for BYTES [MTU]: the fewest segments BYTES of TCP payload can take (no options).
segs_for()
{
	local mss=$((${2:-$MTU} - 40))
	echo $((($1 + mss - 1) / mss))
}

# The "in X s, Y Gbit/s" of an xfer ok line, for the figures.
rate_of()
{
	sed -n 's/.* in \([0-9.]* s\), \([0-9.]* Gbit\/s\).*/\1, \2/p' <<< "$1"
}

# stack_result SECONDS: waits for the stack-side xfer's summary line (it holds the stack after
# it, -H/-K); sets STACK_LAST; fails with the line and the stack's TCP figures unless "ok".
stack_result()
{
	wait_line "$STACK_OUT" "^xfer: (ok|FAILED)" "$1" "$STACK_PID"
	STACK_LAST=$(grep -E "^xfer: (ok|FAILED)" "$STACK_OUT" | tail -n 1)
	case $STACK_LAST in
	"xfer: ok"*) ;;
	*)
		# states by number (tcp_cb.h's enum): stackdump names them after Linux's numbering
		fail "stack: ${STACK_LAST#xfer: } [$(dump "$STACK_NAME" | jq -c '.stacks[0] |
			(.counters | {tcp_retransmits, tcp_rto_expired, tcp_timeouts, tcp_rx_rst,
			tcp_tx_rst}) + {tcp_states: ([.sockets.rows[] | select(.proto == "tcp") |
			.state_num] | group_by(.) | map("\(.[0])x\(length)") | join(" "))}')]"
		;;
	esac
}

# peer_result SECONDS: the same for a background peer (peer_start): waits for it to end.
peer_result()
{
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		kill -0 "$PEER_PID" 2> /dev/null || break
		sleep 0.1
	done
	kill -0 "$PEER_PID" 2> /dev/null && fail "peer still running after $1 s: $(tail -n 1 "$PEER_OUT")"
	PEER_LAST=$(tail -n 1 "$PEER_OUT")
	wait "$PEER_PID" || fail "peer: ${PEER_LAST#xfer: }"
}

# tcp_transfer ROLE BYTES CONNS SECONDS: TCP between the stack and the kernel peer of the
# current topology, CONNS connections each carrying BYTES both ways at once. ROLE is the
# stack's: server (the kernel connects to it) or client. Leaves the stack held (-H) after
# success, STACK_LAST its summary line, and OPENS the counter that must equal CONNS.
tcp_transfer()
{
	local role=$1 bytes=$2 conns=$3 secs=$4
	local opts=(-b "$bytes" -c "$conns")
	if [ "$role" = server ]; then
		stack_start srv "${opts[@]}" -H -K stack tcp-server 5001
		wait_line "$STACK_OUT" "^xfer: listening" 10 "$STACK_PID"
		peer_run "$secs" "${opts[@]}" kernel tcp-client "$STACK_IP" 5001
		stack_result 30
		OPENS=tcp_passive_opens
	else
		peer_start srv "${opts[@]}" kernel tcp-server 5001
		stack_start cli "${opts[@]}" -H -K stack tcp-client "$PEER_IP" 5001
		stack_result "$secs"
		peer_result 30
		OPENS=tcp_active_opens
	fi
}

# tcp_check_through BYTES CONNS: the connections were the stack's and every byte crossed it
# both ways (at least one segment per MSS each way).
tcp_check_through()
{
	local segs
	segs=$(segs_for $(($1 * $2)))
	stat_is "$STACK_NAME" "$OPENS" "$2"
	stat_at_least "$STACK_NAME" link_rx "$segs"
	stat_at_least "$STACK_NAME" tcp_rx_segs "$segs"
	stat_at_least "$STACK_NAME" tcp_tx_segs "$segs"
}

# ---- programs under onramp (test_apps.sh, test_redis_sockperf.sh) ---------------------------

# app_watch NAME: samples `stackdump --json lots NAME` every 50 ms into $CASE_DIR/NAME.json
# (the last sample in which the stack was alive) until app_unwatch.
app_watch()
{
	local name=$1
	(
		while :; do
			"$SDUMP" --json lots "it$CASE_ID-$name" > "$CASE_DIR/$name.tmp" 2> /dev/null &&
				mv "$CASE_DIR/$name.tmp" "$CASE_DIR/$name.json"
			sleep 0.05
		done
	) &
	WATCH_PID=$!
	PIDS+=("$WATCH_PID")
}

app_unwatch()
{
	kill "$WATCH_PID" 2> /dev/null
	wait "$WATCH_PID" 2> /dev/null || true
}

# sampled NAME JQ: a value from the last sample of NAME's stack.
sampled()
{
	[ -s "$CASE_DIR/$1.json" ] || fail "stackdump never saw stack $1"
	jq -er ".stacks[0] | $2" "$CASE_DIR/$1.json"
}

# through_stack NAME OPENS MIN RX TX: the sample shows at least MIN connections opened (OPENS:
# active or passive) and TCP segments enough to carry RX bytes in and TX bytes out (1460-byte
# segments at most): the connections and their bytes went through the stack.
through_stack()
{
	local n segs
	n=$(sampled "$1" ".counters.tcp_${2}_opens")
	[ "$n" -ge "$3" ] || fail "$1: $n tcp_${2}_opens, expected at least $3"
	segs=$(sampled "$1" '.counters.tcp_rx_segs')
	[ "$segs" -ge $(($4 / 1460)) ] || fail "$1: $segs segments in, expected at least $(($4 / 1460))"
	segs=$(sampled "$1" '.counters.tcp_tx_segs')
	[ "$segs" -ge $(($5 / 1460)) ] || fail "$1: $segs segments out, expected at least $(($5 / 1460))"
}

# onramp_in_stack_ns NAME CMD...: CMD under onramp in the stack's namespace, stack NAME.
onramp_in_stack_ns()
{
	local name=$1
	shift
	ip netns exec "$STACK_NS" env "${STACK_ENV[@]}" EF_NAME="it$CASE_ID-$name" \
		"$ONRAMP" -- "$@"
}

# onramp_start NAME OUT CMD...: the same in the background, output to OUT; APP_PID is the
# program's own pid (ip, env and the launcher all exec), so the case's cleanup ends it.
onramp_start()
{
	local name=$1 out=$2
	shift 2
	ip netns exec "$STACK_NS" env "${STACK_ENV[@]}" EF_NAME="it$CASE_ID-$name" \
		"$ONRAMP" -- "$@" > "$out" 2>&1 &
	APP_PID=$!
	PIDS+=("$APP_PID")
}

# app_topo LINK: topo_up, and on tap the device made up front (with the kernel side's
# address), so that a kernel server can listen on it before any stack runs.
app_topo()
{
	topo_up "$1"
	if [ "$LINK" = tap ]; then
		ip -n "$STACK_NS" tuntap add dev "$STACK_IF" mode tap
		ip -n "$STACK_NS" addr add "$PEER_IP/24" dev "$STACK_IF"
		ip -n "$STACK_NS" link set "$STACK_IF" up
	fi
}
