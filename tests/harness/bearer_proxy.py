#!/usr/bin/env python3
"""Forward GET requests to the crossguard dashboard with `Authorization: Bearer <token>`.

A headless browser has no flag to send a header or a cookie, so the browser test and
`make demo` point Chromium at this proxy, which adds the viewer's token the way an
authenticating proxy (oauth2-proxy, an Ingress with external auth) would in front of a
real dashboard. GET only: the dashboard is read-only. Standard library only.

    bearer_proxy.py --upstream http://127.0.0.1:8080 --token-file token.txt
    # prints exactly one line: listening on http://127.0.0.1:PORT
"""

import argparse
import http.server
import sys
import urllib.error
import urllib.request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="the operator's HTTP address")
    parser.add_argument("--token-file", required=True, help="file holding the bearer token")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any)")
    args = parser.parse_args()
    with open(args.token_file, encoding="utf-8") as f:
        token = f.read().strip()
    upstream = args.upstream.rstrip("/")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):  # pass redirects on to the browser
            return None

    opener = urllib.request.build_opener(NoRedirect)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            request = urllib.request.Request(
                upstream + self.path, headers={"Authorization": "Bearer " + token}
            )
            try:
                response = opener.open(request, timeout=30)
            except urllib.error.HTTPError as e:
                response = e
            body = response.read()
            self.send_response(response.status)
            for name, value in response.headers.items():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *a) -> None:
            sys.stderr.write("bearer_proxy: " + (fmt % a) + "\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
