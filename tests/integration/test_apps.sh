#!/usr/bin/env bash
# tests/integration/test_apps.sh BUILD — unmodified programs under `onramp` (design §10):
# curl and socat as clients and as servers, and one server reached at once through the stack
# (from the peer) and through its kernel listener (from 127.0.0.1). Every case proves from
# `stackdump --json` that its connections went through the stack, checks every byte, and
# ends with the pool full.
#
# A client's stack goes away when the client exits, so its figures are sampled while it runs
# (app_watch): the transfers are paced (tools/demo/paced_http.py) to last a couple of seconds.
source "$(dirname "$0")/lib.sh"
require_root
PACED_HTTP=$(realpath "$(dirname "$0")/../../tools/demo/paced_http.py")
PATH=$PATH:/usr/sbin
for t in curl socat python3 nginx iperf3; do
	command -v "$t" > /dev/null || skip_all "needs $t (make deps)"
done

make_file()
{
	head -c "$2" /dev/urandom > "$1"
}

# ---- cases -----------------------------------------------------------------------------------

curl_client_case()
{
	app_topo "$1"
	make_file "$CASE_DIR/page" $((3 << 20))
	ip netns exec "$PEER_NS" python3 "$PACED_HTTP" "$PEER_IP" 8080 "$CASE_DIR/page" \
		$((2 << 20)) > "$CASE_DIR/http.out" 2>&1 &
	PIDS+=($!)
	wait_line "$CASE_DIR/http.out" "listening" 10 $!
	app_watch curl
	onramp_in_stack_ns curl curl -sS -o "$CASE_DIR/got" \
		"http://$PEER_IP:8080/page" || fail "curl exit $?"
	app_unwatch
	cmp -s "$CASE_DIR/page" "$CASE_DIR/got" || fail "the page curl fetched differs"
	# the last sample may miss the tail of the transfer
	through_stack curl active 1 $((2 << 20)) 0
	pass "3 MiB fetched, $(sampled curl '.counters.tcp_rx_segs') segments in"
}

curl_server_case() # a kernel curl fetches from a web server (python3) under onramp
{
	app_topo "$1"
	make_file "$CASE_DIR/page" $((8 << 20))
	onramp_start web "$CASE_DIR/web.out" python3 -m http.server 8081 --bind 0.0.0.0 \
		--directory "$CASE_DIR"
	wait_line "$CASE_DIR/web.out" "Serving HTTP" 10 "$APP_PID"
	for i in 1 2 3; do
		ip netns exec "$PEER_NS" curl -sS -o "$CASE_DIR/got$i" "http://$STACK_IP:8081/page" ||
			fail "curl $i exit $?"
		cmp -s "$CASE_DIR/page" "$CASE_DIR/got$i" || fail "fetch $i differs"
	done
	"$SDUMP" --json lots "it$CASE_ID-web" > "$CASE_DIR/web.json"
	through_stack web passive 3 0 $((24 << 20))
	check_pool_full "it$CASE_ID-web"
	pass "3 x 8 MiB served"
}

# socat_server_case LINK [nofork]: socat echo server with a child per connection (fork
# shares the stack); with nofork the child execs cat with the connection as its stdin and
# stdout (inetd-style), so the new image serves an inherited accelerated socket.
socat_server_case()
{
	app_topo "$1"
	make_file "$CASE_DIR/data" $((4 << 20))
	onramp_start echo "$CASE_DIR/echo.out" socat TCP-LISTEN:5000,reuseaddr,fork \
		"EXEC:cat${2:+,$2}"
	for _ in $(seq 100); do
		"$SDUMP" --json lots "it$CASE_ID-echo" 2> /dev/null |
			jq -e '.stacks[0].sockets.rows[]? | select(.state == "LISTEN")' > /dev/null && break
		sleep 0.05
	done
	for i in 1 2; do
		ip netns exec "$PEER_NS" timeout 30 socat -t 5 - "TCP:$STACK_IP:5000" \
			< "$CASE_DIR/data" > "$CASE_DIR/back$i" || fail "socat client $i exit $?"
		cmp -s "$CASE_DIR/data" "$CASE_DIR/back$i" || fail "echo $i differs"
	done
	"$SDUMP" --json lots "it$CASE_ID-echo" > "$CASE_DIR/echo.json"
	through_stack echo passive 2 $((8 << 20)) $((8 << 20))
	check_pool_full "it$CASE_ID-echo"
	pass "2 x 4 MiB echoed by forked children${2:+ that exec cat}"
}

socat_client_case()
{
	app_topo "$1"
	make_file "$CASE_DIR/data" $((4 << 20))
	ip netns exec "$PEER_NS" socat -u TCP-LISTEN:5001,reuseaddr "OPEN:$CASE_DIR/got,creat" &
	PIDS+=($!)
	sleep 0.3
	app_watch sc
	# pv-like pacing without pv: the file goes through a pipe in 256 KiB steps
	(for ((k = 0; k < 16; k++)); do
		dd if="$CASE_DIR/data" bs=256K skip=$k count=1 status=none
		sleep 0.1
	done) | onramp_in_stack_ns sc socat -u - "TCP:$PEER_IP:5001" || fail "socat exit $?"
	app_unwatch
	for _ in $(seq 50); do
		[ "$(wc -c < "$CASE_DIR/got" 2> /dev/null)" = $((4 << 20)) ] && break
		sleep 0.1
	done
	cmp -s "$CASE_DIR/data" "$CASE_DIR/got" || fail "what the peer got differs"
	through_stack sc active 1 0 $((2 << 20))
	pass "4 MiB sent"
}

dual_case() # one listener on INADDR_ANY: the peer through the stack, 127.0.0.1 through the kernel
{
	app_topo "$1"
	make_file "$CASE_DIR/page" $((1 << 20))
	onramp_start dual "$CASE_DIR/dual.out" python3 -m http.server 8082 --bind 0.0.0.0 \
		--directory "$CASE_DIR"
	wait_line "$CASE_DIR/dual.out" "Serving HTTP" 10 "$APP_PID"
	ip netns exec "$PEER_NS" curl -sS -o "$CASE_DIR/p1" "http://$STACK_IP:8082/page" &
	local a=$!
	ip netns exec "$STACK_NS" curl -sS -o "$CASE_DIR/p2" "http://127.0.0.1:8082/page" &
	local b=$!
	wait $a || fail "peer curl exit $?"
	wait $b || fail "local curl exit $?"
	cmp -s "$CASE_DIR/page" "$CASE_DIR/p1" || fail "the peer's copy differs"
	cmp -s "$CASE_DIR/page" "$CASE_DIR/p2" || fail "the local copy differs"
	"$SDUMP" --json lots "it$CASE_ID-dual" > "$CASE_DIR/dual.json"
	through_stack dual passive 1 0 $((1 << 20))
	check_pool_full "it$CASE_ID-dual"
	pass "1 MiB to each, at once"
}

nginx_case() # nginx, a master and 2 forked workers accepting on its listener
{
	app_topo "$1"
	mkdir -p "$CASE_DIR/www" "$CASE_DIR/tmp"
	make_file "$CASE_DIR/www/f" $((256 << 10))
	cat > "$CASE_DIR/nginx.conf" <<- EOF
		user root;
		daemon off;
		master_process on;
		worker_processes 2;
		pid $CASE_DIR/nginx.pid;
		error_log $CASE_DIR/error.log;
		events { worker_connections 256; }
		http {
			log_format w '\$pid \$status \$body_bytes_sent';
			access_log $CASE_DIR/access.log w;
			client_body_temp_path $CASE_DIR/tmp;
			proxy_temp_path $CASE_DIR/tmp;
			fastcgi_temp_path $CASE_DIR/tmp;
			uwsgi_temp_path $CASE_DIR/tmp;
			scgi_temp_path $CASE_DIR/tmp;
			server { listen 8083; root $CASE_DIR/www; }
		}
	EOF
	onramp_start nginx "$CASE_DIR/nginx.out" nginx -c "$CASE_DIR/nginx.conf" -p "$CASE_DIR"
	local master=$APP_PID pids=() p
	for _ in $(seq 100); do
		"$SDUMP" --json lots "it$CASE_ID-nginx" 2> /dev/null |
			jq -e '.stacks[0].sockets.rows[]? | select(.state == "LISTEN")' > /dev/null && break
		sleep 0.05
	done
	for c in 1 2 3 4; do
		ip netns exec "$PEER_NS" bash -c "for i in \$(seq 25); do
			curl -sS -o '$CASE_DIR/got$c' http://$STACK_IP:8083/f || exit 1
			cmp -s '$CASE_DIR/got$c' '$CASE_DIR/www/f' || { cp '$CASE_DIR/got$c' '$CASE_DIR/bad.out'; exit 2; }
		done" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || fail "a curl loop failed (exit $?: 1 curl, 2 wrong bytes)"
	done
	"$SDUMP" --json lots "it$CASE_ID-nginx" > "$CASE_DIR/nginx.json"
	through_stack nginx passive 100 0 $((100 * (256 << 10)))
	check_pool_full "it$CASE_ID-nginx"
	[ "$(awk '$2 == 200 && $3 == 262144' "$CASE_DIR/access.log" | wc -l)" = 100 ] ||
		fail "access log: not 100 full responses"
	[ "$(awk '{ print $1 }' "$CASE_DIR/access.log" | sort -u | wc -l)" = 2 ] ||
		fail "not both workers served: $(awk '{ print $1 }' "$CASE_DIR/access.log" | sort | uniq -c | tr '\n' ' ')"
	kill -QUIT "$master" # graceful: the workers finish and exit, then the master
	for _ in $(seq 100); do
		kill -0 "$master" 2> /dev/null || break
		sleep 0.05
	done
	kill -0 "$master" 2> /dev/null && fail "nginx did not stop within 5 s of SIGQUIT"
	wait "$master" || true
	[ ! -e "/dev/shm/onramp-$(id -u)-it$CASE_ID-nginx" ] || fail "nginx left its stack region"
	pass "100 x 256 KiB from 4 clients, both workers"
}

fallback_case() # a bad EF_ value: one line, then the kernel (EF_NO_FAIL=1) or exit (=0)
{
	app_topo tap
	make_file "$CASE_DIR/page" 100000
	ip netns exec "$PEER_NS" python3 "$PACED_HTTP" "$PEER_IP" 8084 "$CASE_DIR/page" \
		$((8 << 20)) > "$CASE_DIR/http.out" 2>&1 &
	PIDS+=($!)
	wait_line "$CASE_DIR/http.out" "listening" 10 $!
	onramp_in_stack_ns fb env EF_MAX_PACKETS=lots curl -sS -o "$CASE_DIR/got" \
		"http://$PEER_IP:8084/p" 2> "$CASE_DIR/err" || fail "curl under fallback exit $?"
	cmp -s "$CASE_DIR/page" "$CASE_DIR/got" || fail "the page differs"
	[ "$(wc -l < "$CASE_DIR/err")" = 1 ] || fail "stderr is not one line: $(cat "$CASE_DIR/err")"
	grep -q 'EF_MAX_PACKETS=lots.*accepted.*kernel stack' "$CASE_DIR/err" ||
		fail "the line does not name the value, its range and the fallback: $(cat "$CASE_DIR/err")"
	local rc=0
	onramp_in_stack_ns fb env EF_MAX_PACKETS=lots EF_NO_FAIL=0 curl -sS -o /dev/null \
		"http://$PEER_IP:8084/p" 2> "$CASE_DIR/err0" || rc=$?
	[ $rc = 1 ] || fail "EF_NO_FAIL=0: exit $rc, expected 1"
	grep -q 'EF_MAX_PACKETS=lots.*EF_NO_FAIL=0' "$CASE_DIR/err0" ||
		fail "EF_NO_FAIL=0: $(cat "$CASE_DIR/err0")"
	pass "$(cat "$CASE_DIR/err")"
}
run_case "fallback-bad-ef-value" fallback_case

# iperf_bytes FILE: bytes the receiver counted, from iperf3 -J output.
iperf_bytes()
{
	jq -er '.end.sum_received.bytes' "$1" || fail "no iperf3 result in $1: $(tail -n 3 "$1")"
}

iperf_case() # iperf3 under onramp as server and as client, both directions, 2 s each
{
	app_topo "$1"
	local dir b srv
	onramp_start ip3s "$CASE_DIR/ip3s.out" iperf3 -4 -s -p 5201
	for _ in $(seq 100); do
		"$SDUMP" --json lots "it$CASE_ID-ip3s" 2> /dev/null |
			jq -e '.stacks[0].sockets.rows[]? | select(.state == "LISTEN")' > /dev/null && break
		sleep 0.05
	done
	for dir in "" -R; do
		ip netns exec "$PEER_NS" timeout 30 iperf3 -4 -J -c "$STACK_IP" -p 5201 -t 2 $dir \
			> "$CASE_DIR/ip3c$dir.json" || fail "kernel iperf3 client $dir exit $?"
		b=$(iperf_bytes "$CASE_DIR/ip3c$dir.json")
		[ "$b" -gt $((10 << 20)) ] || fail "iperf3 $dir moved only $b bytes"
		sleep 0.5 # the server takes one test at a time: let it close this one
	done
	"$SDUMP" --json lots "it$CASE_ID-ip3s" > "$CASE_DIR/ip3s.json"
	through_stack ip3s passive 4 $((10 << 20)) $((10 << 20))
	check_pool_full "it$CASE_ID-ip3s"
	srv="$(($(iperf_bytes "$CASE_DIR/ip3c.json") / 262144))/$(($(iperf_bytes "$CASE_DIR/ip3c-R.json") / 262144))"
	# one AF_XDP stack per interface (until stackd shares it): the server's goes first
	kill -TERM "$APP_PID"
	wait "$APP_PID" 2> /dev/null || true
	ip netns exec "$PEER_NS" iperf3 -4 -s -p 5202 > /dev/null 2>&1 &
	PIDS+=($!)
	sleep 0.3
	for dir in "" -R; do
		app_watch "ip3c$dir"
		onramp_in_stack_ns "ip3c$dir" timeout 30 iperf3 -4 -J -c "$PEER_IP" -p 5202 -t 2 $dir \
			> "$CASE_DIR/ip3o$dir.json" || fail "onramp iperf3 client $dir exit $?"
		app_unwatch
		b=$(iperf_bytes "$CASE_DIR/ip3o$dir.json")
		[ "$b" -gt $((10 << 20)) ] || fail "iperf3 client $dir moved only $b bytes"
		if [ -z "$dir" ]; then
			through_stack "ip3c$dir" active 2 0 $((5 << 20))
		else
			through_stack "ip3c$dir" active 2 $((5 << 20)) 0
		fi
		sleep 0.5
	done
	pass "Mbit/s: server in/out $srv, client out/in $(($(iperf_bytes "$CASE_DIR/ip3o.json") / 262144))/$(($(iperf_bytes "$CASE_DIR/ip3o-R.json") / 262144))"
}

for link in ${ONRAMP_TEST_LINKS:-tap xdp}; do
	run_case "iperf3 $link" iperf_case $link
	run_case "nginx-2-workers $link" nginx_case $link
	run_case "curl-client $link" curl_client_case $link
	run_case "curl-server $link" curl_server_case $link
	run_case "socat-server-fork $link" socat_server_case $link
	run_case "socat-server-exec $link" socat_server_case $link nofork
	run_case "socat-client $link" socat_client_case $link
	run_case "dual-listener $link" dual_case $link
done
finish
