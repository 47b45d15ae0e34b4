# shellcheck shell=bash
# tools/bench/veth_lib.sh — sourced by bench_veth.sh and bench_apps.sh: the two namespaces of
# one benchmark run joined by a veth pair, and their removal on every exit path.
#
# veth_up LABEL NS VETH PREFIX: namespaces onr<NS>A/B<pid>, veth ends onr<VETH>a/b<pid> with
# ADDR_A and ADDR_B (a /24 of 198.18.0.0/15, picked by the pid), stack names PREFIX<pid>-*,
# logs in LOGS; PIDS collects what the script starts, and the EXIT trap ends those, deletes the
# namespaces (with them the pair) and the regions, and the logs.

# stop_pid PID [SIGNAL]: ends one process we started and what it forked (nginx's workers,
# say), waiting up to 5 s before SIGKILL.
stop_pid() {
	local pid=$1 sig=${2:-TERM} kids i
	kids=$(pgrep -P "$pid" 2>/dev/null || true)
	kill "-$sig" "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	# shellcheck disable=SC2086 # a list of pids
	kill -KILL "$pid" $kids 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

veth_cleanup() {
	local pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		stop_pid "$pid"
	done
	# deleting a namespace deletes the veth end (and so the pair) inside it
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSB" 2>/dev/null || true
	# a killed stack leaves its region behind; remove only ours
	rm -f /dev/shm/onramp-"$(id -u)"-"$STACK_NAME"-*
	rm -rf "$LOGS"
}

veth_up() {
	local label=$1 net
	ID=$$
	NSA=onr${2}A$ID
	NSB=onr${2}B$ID
	VA=onr${3}a$ID # IFNAMSIZ is 16: 5 letters and a pid of at most 7 digits fit
	VB=onr${3}b$ID
	net=198.18.$((ID % 250 + 1)) # 198.18.0.0/15 is for benchmarks (RFC 2544)
	ADDR_A=$net.1
	ADDR_B=$net.2
	STACK_NAME=$4$ID # EF_NAME prefix; each run adds its own suffix
	LOGS=$(mktemp -d "/tmp/$label.$ID.XXXXXX")
	PIDS=()
	trap veth_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	ip netns add "$NSA"
	ip netns add "$NSB"
	ip link add "$VA" netns "$NSA" type veth peer name "$VB" netns "$NSB"
	ip -n "$NSA" addr add "$ADDR_A/24" dev "$VA"
	ip -n "$NSB" addr add "$ADDR_B/24" dev "$VB"
	ip -n "$NSA" link set lo up
	ip -n "$NSB" link set lo up
	ip -n "$NSA" link set "$VA" up
	ip -n "$NSB" link set "$VB" up
	# The kernel peer would leave TX checksums to "hardware" and AF_XDP copy mode would get
	# them unfinished. This also turns off the peer's TSO; both back ends run with it off, so
	# the comparison stays fair.
	ip netns exec "$NSB" ethtool -K "$VB" tx off >/dev/null
	if ! ip netns exec "$NSA" ping -q -c 1 -W 2 "$ADDR_B" >/dev/null; then
		echo "$label: the veth pair does not carry traffic" >&2
		exit 1
	fi
}
