#!/usr/bin/env python3
# tools/demo/paced_http.py ADDR PORT FILE RATE — a kernel-side web server for the demo and the
# integration tests: serves FILE (at any path) at RATE bytes/s, so that the connection stays
# open long enough for stackdump to look at it. Prints "listening" once ready.
import http.server
import sys
import time

addr, port, path, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with open(path, "rb") as f:
    body = f.read()
chunk = 64 * 1024


class Paced(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for off in range(0, len(body), chunk):
            self.wfile.write(body[off:off + chunk])
            time.sleep(chunk / rate)

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer((addr, port), Paced)
print("listening", flush=True)
srv.serve_forever()
