#!/usr/bin/env bash
# tools/demo/demo.sh BUILD_DIR — `make demo`: an unmodified curl, run under `onramp`, fetches
# a page from a server on the kernel side of a TAP device. While the transfer runs, stackdump
# shows the connection and the pool; afterwards the page is checked byte for byte. Everything
# happens in a network namespace of its own (198.18.99.0/24), removed on every exit path.
set -euo pipefail
B=$(realpath "${1:-build}")
ONRAMP="$B/tools/onramp/onramp"
SDUMP="$B/tools/stackdump/stackdump"
ns="onramp-demo-$$"
dir=$(mktemp -d /tmp/onramp-demo.XXXXXX)
server=
curl_pid=

# On every exit, with the script's own status: the server and curl end by our kill, and
# their wait status must not become the demo's.
cleanup()
{
	local rc=$?
	set +e
	[ -n "$curl_pid" ] && kill "$curl_pid" 2> /dev/null && wait "$curl_pid" 2> /dev/null
	[ -n "$server" ] && kill "$server" 2> /dev/null && wait "$server" 2> /dev/null
	ip netns del "$ns" 2> /dev/null
	rm -rf "$dir"
	exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ "$(id -u)" = 0 ] || { echo "demo: needs root (a network namespace and a TAP device)" >&2; exit 1; }
for t in curl python3 ip; do
	command -v "$t" > /dev/null || { echo "demo: needs $t (make deps)" >&2; exit 1; }
done

# The kernel's side: a TAP device with 198.18.99.1, and a web server on it.
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev onrdemo0 mode tap
ip -n "$ns" addr add 198.18.99.1/24 dev onrdemo0
ip -n "$ns" link set onrdemo0 up
head -c $((2 << 20)) /dev/urandom > "$dir/page.bin"
ip netns exec "$ns" python3 "$(dirname "$0")/paced_http.py" 198.18.99.1 8080 "$dir/page.bin" \
	$((1 << 20)) > "$dir/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
	grep -q listening "$dir/server.log" && break
	sleep 0.05
done

# The stack's side: curl under onramp, on the same TAP as 198.18.99.2. The server sends at
# 1 MiB/s, which keeps the connection open long enough to look at it.
echo "\$ onramp curl http://198.18.99.1:8080/page.bin"
ip netns exec "$ns" env EF_NAME=demo EF_TAP_NAME=onrdemo0 EF_TAP_ADDR=198.18.99.2/24 \
	"$ONRAMP" -- curl -sS -o "$dir/got.bin" http://198.18.99.1:8080/page.bin &
curl_pid=$!
sleep 1
echo
echo "\$ stackdump lots demo      # while curl is downloading"
"$SDUMP" lots demo
wait "$curl_pid"
rc=$?
curl_pid=
echo
if [ $rc -ne 0 ] || ! cmp -s "$dir/page.bin" "$dir/got.bin"; then
	echo "demo: FAILED (curl exit $rc, or the page differs)"
	exit 1
fi
echo "curl fetched $(stat -c %s "$dir/got.bin") bytes through the stack, identical to the page."
