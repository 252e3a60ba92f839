#!/usr/bin/env python3
"""Stand-in for Slack and a generic webhook, for crossguard's demo and end-to-end tests.

Standard library only. Serves on 127.0.0.1:

  POST /api/chat.postMessage   Slack Web API: needs "Authorization: Bearer xox..." (with
                               --token, exactly that token) and a JSON body with "channel"
                               and "text"; answers {"ok": true, "channel", "ts"} or, like
                               Slack, HTTP 200 {"ok": false, "error": "not_authed" |
                               "invalid_auth" | "channel_not_found" | "no_text" | "invalid_json"}
  POST /hooks/slack[/...]      Slack incoming webhook: JSON with "text"; answers "ok"
  POST /hooks/generic[/...]    generic JSON webhook: answers 200 {}

Controls:

  POST   /_receiver/fail       {"path": "/api/chat.postMessage", "status": 200|429|500|...,
                                "error": "ratelimited", "retry_after": 2, "count": 1,
                                "delay": 0}
                               -> the next `count` requests to that endpoint answer that way:
                                  status 200 (chat.postMessage only) gives {"ok": false,
                                  "error": ...}; other statuses carry the error in the body
                                  (Slack's JSON for chat.postMessage, plain text for
                                  /hooks/slack, {"error": ...} for /hooks/generic) and
                                  Retry-After when retry_after is given. With "delay" (seconds)
                                  the answer is held that long first; "delay" without
                                  "status" holds a normal answer.
  GET    /_receiver/fail       -> failures still armed
  DELETE /_receiver/fail       -> disarm them
  GET    /_receiver/messages   -> every request so far, as a JSON list (the --log lines)
  DELETE /_receiver/messages   -> forget them (the --log file is kept)
  GET    /_receiver/health     -> {"status": "ok"}

Each request to a served endpoint is recorded as one JSON line:
  {"time", "path", "channel", "text", "idempotency_key", "authorized", "status", "error", "body"}
where "path" is the endpoint (a webhook's extra path, where real webhook secrets live, is
not recorded) and "authorized" says whether a bearer token was present; the Authorization
header's value is never recorded.

Usage:
  receiver.py [--port 0] [--port-file PATH] [--log FILE] [--token TOKEN] [--exit-with-parent]

Prints "listening on http://127.0.0.1:PORT" (flushed) once the server accepts connections,
and writes PORT to --port-file at the same moment (atomically). Stops cleanly on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

CHAT = "/api/chat.postMessage"
SLACK_HOOK = "/hooks/slack"
GENERIC_HOOK = "/hooks/generic"
ENDPOINTS = (CHAT, SLACK_HOOK, GENERIC_HOOK)
CONTROL = "/_receiver/"
MAX_BODY = 1024 * 1024


def endpoint_of(path: str) -> str | None:
    """The served endpoint a request path belongs to (webhooks may carry extra path)."""
    for endpoint in ENDPOINTS:
        if path == endpoint or (endpoint != CHAT and path.startswith(endpoint + "/")):
            return endpoint
    return None


def parse_fail(req: Any) -> tuple[dict[str, Any], str | None]:
    if not isinstance(req, dict):
        return {}, "body must be a JSON object"
    path = req.get("path")
    if path not in ENDPOINTS:
        return {}, f"'path' must be one of {', '.join(ENDPOINTS)}"
    status = req.get("status")
    delay = req.get("delay", 0)
    if not isinstance(delay, (int, float)) or isinstance(delay, bool) or not 0 <= delay <= 300:
        return {}, "'delay' must be a number of seconds in [0, 300]"
    if status is None and not delay:
        return {}, "'status' is required (or 'delay' alone to hold a normal answer)"
    if status is not None and (not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599):
        return {}, "'status' must be an HTTP status (200-599)"
    if status == 200 and path != CHAT:
        return {}, "status 200 failures exist only for /api/chat.postMessage ({\"ok\": false})"
    retry_after = req.get("retry_after")
    if retry_after is not None and (not isinstance(retry_after, int) or isinstance(retry_after, bool) or retry_after < 0):
        return {}, "'retry_after' must be a whole number of seconds >= 0"
    count = req.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return {}, "'count' must be a positive integer"
    default_error = {200: "internal_error", 429: "ratelimited"}.get(status or 0)
    if default_error is None:
        default_error = "service_unavailable" if (status or 0) >= 500 else "invalid_payload"
    error = req.get("error") or default_error
    return {
        "path": path,
        "status": status,
        "error": str(error),
        "retry_after": retry_after,
        "count": count,
        "remaining": count,
        "delay": delay,
    }, None


class State:
    def __init__(self, log_path: str | None, token: str | None) -> None:
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self.fails: list[dict[str, Any]] = []
        self.token = token
        self.log = open(log_path, "a", encoding="utf-8") if log_path else None
        self.ts = 0

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.messages.append(entry)
            if self.log:
                self.log.write(json.dumps(entry) + "\n")
                self.log.flush()

    def take_fail(self, endpoint: str) -> dict[str, Any] | None:
        with self.lock:
            for fail in self.fails:
                if fail["path"] == endpoint and fail["remaining"] > 0:
                    fail["remaining"] -= 1
                    return dict(fail)
        return None

    def next_ts(self) -> str:
        with self.lock:
            self.ts += 1
            return f"{int(time.time())}.{self.ts:06d}"


class Handler(BaseHTTPRequestHandler):
    server_version = "crossguard-receiver"
    protocol_version = "HTTP/1.1"
    state: State  # set on the class by main()

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        pass

    # -- plumbing ----------------------------------------------------------------------
    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._answer(status, (json.dumps(obj) + "\n").encode(), "application/json; charset=utf-8", headers)

    # -- verbs -------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        try:
            if path.startswith(CONTROL):
                self._control(method, path[len(CONTROL) :].strip("/"), body)
                return
            endpoint = endpoint_of(path)
            if endpoint is None or method != "POST":
                self._json(404, {"error": f"nothing at {method} {path}"})
                return
            self._serve(endpoint, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing to answer

    # -- served endpoints --------------------------------------------------------------
    def _serve(self, endpoint: str, raw: bytes) -> None:
        try:
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            payload = None
        auth = self.headers.get("Authorization") or ""
        entry: dict[str, Any] = {
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "path": endpoint,
            "channel": payload.get("channel") if payload else None,
            "text": payload.get("text") if payload else None,
            "idempotency_key": self.headers.get("Idempotency-Key"),
            "authorized": auth.startswith("Bearer "),
            "status": None,
            "error": None,
            "body": payload if endpoint == GENERIC_HOOK else None,
        }
        fail = self.state.take_fail(endpoint)
        if fail and fail["delay"]:
            time.sleep(fail["delay"])
        if fail and fail["status"] is not None:
            self._fail(endpoint, fail, entry)
        elif endpoint == CHAT:
            self._chat(payload, auth, entry)
        elif payload is None or (endpoint == SLACK_HOOK and not payload.get("text")):
            entry["status"], entry["error"] = 400, "invalid_payload"
            self.state.record(entry)
            if endpoint == SLACK_HOOK:
                self._answer(400, b"invalid_payload", "text/plain")
            else:
                self._json(400, {"error": "invalid_payload"})
        else:
            entry["status"] = 200
            self.state.record(entry)
            if endpoint == SLACK_HOOK:
                self._answer(200, b"ok", "text/plain")
            else:
                self._json(200, {})

    def _chat(self, payload: dict[str, Any] | None, auth: str, entry: dict[str, Any]) -> None:
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        if not token.startswith("xox"):
            error = "not_authed"
        elif self.state.token is not None and token != self.state.token:
            error = "invalid_auth"
        elif payload is None:
            error = "invalid_json"
        elif not payload.get("channel"):
            error = "channel_not_found"
        elif not payload.get("text"):
            error = "no_text"
        else:
            error = None
        entry["status"], entry["error"] = 200, error
        self.state.record(entry)
        if error:
            self._json(200, {"ok": False, "error": error})
        else:
            self._json(200, {"ok": True, "channel": payload["channel"], "ts": self.state.next_ts()})  # type: ignore[index]

    def _fail(self, endpoint: str, fail: dict[str, Any], entry: dict[str, Any]) -> None:
        status, error = fail["status"], fail["error"]
        entry["status"], entry["error"] = status, error
        self.state.record(entry)
        headers = {"Retry-After": str(fail["retry_after"])} if fail["retry_after"] is not None else {}
        if endpoint == CHAT:
            self._json(status, {"ok": False, "error": error}, headers)
        elif endpoint == SLACK_HOOK:
            self._answer(status, error.encode(), "text/plain", headers)
        else:
            self._json(status, {"error": error}, headers)

    # -- /_receiver/ -------------------------------------------------------------------
    def _control(self, method: str, name: str, raw: bytes) -> None:
        state = self.state
        if name == "health" and method == "GET":
            self._json(200, {"status": "ok"})
        elif name == "messages" and method == "GET":
            with state.lock:
                self._json(200, list(state.messages))
        elif name == "messages" and method == "DELETE":
            with state.lock:
                n = len(state.messages)
                state.messages.clear()
            self._json(200, {"cleared": n})
        elif name == "fail" and method == "GET":
            with state.lock:
                self._json(200, [f for f in state.fails if f["remaining"] > 0])
        elif name == "fail" and method == "DELETE":
            with state.lock:
                n = len(state.fails)
                state.fails.clear()
            self._json(200, {"cleared": n})
        elif name == "fail" and method == "POST":
            try:
                req = json.loads(raw) if raw.strip() else {}
            except ValueError:
                req = None
            fail, err = parse_fail(req)
            if err:
                self._json(400, {"error": err})
                return
            with state.lock:
                state.fails.append(fail)
            self._json(200, fail)
        else:
            self._json(404, {"error": f"no control {method} {CONTROL}{name}"})


def main(argv: list[str] | None = None) -> int:
    parent = os.getppid()
    parser = argparse.ArgumentParser(description="Slack and webhook stand-in for crossguard's tests")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one (default)")
    parser.add_argument("--port-file", help="write the bound port here once the server accepts connections")
    parser.add_argument("--log", help="append one JSON line per request to this file")
    parser.add_argument("--token", help="accept only this bot token (default: any xox… token)")
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="exit when the process that started this one goes away"
    )
    args = parser.parse_args(argv)

    Handler.state = State(args.log, args.token)
    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as exc:
        print(f"receiver: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    server.daemon_threads = True
    port = server.server_address[1]

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="receiver", daemon=True)
    thread.start()

    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"listening on http://{args.host}:{port}", flush=True)

    code = 0
    while not stop.wait(0.2):
        if args.exit_with_parent and os.getppid() != parent:
            break
        if not thread.is_alive():
            print("receiver: server thread died", file=sys.stderr)
            code = 1
            break
    server.shutdown()
    server.server_close()
    if Handler.state.log:
        Handler.state.log.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
