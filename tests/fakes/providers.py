"""Fake Twilio and SendGrid HTTP APIs for the real SDKs to talk to.

Requests are checked against the providers' official OpenAPI documents; accepted ones are
recorded. Tests script failures (status, Twilio error code, Retry-After, delay) through
`POST /_fake/script` and read what arrived through `GET /_fake/requests`. Like SendGrid's
signed event webhook, the fake can post a `processed` event for each accepted email
(`FakeProviders.post_sendgrid_events`), in batches, retried until the receiver takes them.
Run it as a process with `python -m tests.fakes.providers --port 0` (prints the port it bound).
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import threading
import time
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from tests.fakes.sendgrid_events import EventSink, post_events, processed_events
from tests.fakes.specs import sendgrid_mail_errors, twilio_message_errors

TWILIO_MESSAGES = "/2010-04-01/Accounts/{sid}/Messages.json"


class FakeState:
    """What the fakes received and what they were told to answer next."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[str, list[dict[str, Any]]] = {"twilio": [], "sendgrid": []}
        self.rejected: dict[str, list[dict[str, Any]]] = {"twilio": [], "sendgrid": []}
        self.script: dict[str, deque[dict[str, Any]]] = {"twilio": deque(), "sendgrid": deque()}
        self.latency_s = 0.0
        self.messages: dict[str, dict[str, Any]] = {}
        self.failures: list[dict[str, Any]] = []
        self.event_sink: EventSink | None = None
        self.events: list[dict[str, Any]] = []  # accepted emails' events not yet posted
        self.events_posted = 0

    def next_action(self, provider: str) -> dict[str, Any] | None:
        with self.lock:
            queue = self.script[provider]
            return queue.popleft() if queue else None


def _twilio_message(account: str, form: dict[str, str]) -> dict[str, Any]:
    sid = "SM" + secrets.token_hex(16)
    now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return {
        "sid": sid,
        "account_sid": account,
        "api_version": "2010-04-01",
        "body": form.get("Body"),
        "to": form["To"],
        "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "status": "queued",
        "direction": "outbound-api",
        "num_segments": "1",
        "num_media": "0",
        "date_created": now,
        "date_updated": now,
        "date_sent": None,
        "price": None,
        "price_unit": "USD",
        "error_code": None,
        "error_message": None,
        "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        "subresource_uris": {},
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately: with Nagle on, each answer on a kept-alive
    # connection waits for the client's delayed ACK (about 40 ms), which no real API adds.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        state = self.server.state
        if url.path == "/_fake/requests":
            with state.lock:
                self._reply(200, {"requests": state.requests, "rejected": state.rejected})
            return
        if url.path.startswith("/2010-04-01/Accounts/") and "/Messages/" in url.path:
            sid = url.path.rsplit("/", 1)[-1].removesuffix(".json")
            with state.lock:
                message = state.messages.get(sid)
            self._reply(200, message) if message else self._reply(
                404, {"code": 20404, "message": "not found", "status": 404}
            )
            return
        if url.path.startswith("/2010-04-01/Accounts/") and url.path.endswith("/Messages.json"):
            to = dict(parse_qsl(url.query)).get("To")
            with state.lock:
                found = [m for m in state.messages.values() if to is None or m["to"] == to]
            self._reply(
                200,
                {
                    "messages": found,
                    "page": 0,
                    "page_size": 50,
                    "next_page_uri": None,
                    "uri": url.path,
                },
            )
            return
        self._reply(404, {"message": "no such fake endpoint"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if url.path == "/_fake/script":
            self._script(json.loads(body or b"{}"))
        elif url.path == "/_fake/reset":
            self.server.reset()
            self._reply(204)
        elif url.path.startswith("/2010-04-01/Accounts/") and url.path.endswith("/Messages.json"):
            self._twilio(url.path.split("/")[3], body)
        elif url.path == "/v3/mail/send":
            self._sendgrid(body)
        else:
            self._reply(404, {"message": "no such fake endpoint"})

    def _script(self, request: dict[str, Any]) -> None:
        state = self.server.state
        with state.lock:
            if "latency_ms" in request:
                state.latency_s = float(request["latency_ms"]) / 1000
            for provider in ("twilio", "sendgrid"):
                state.script[provider].extend(request.get(provider, []))
        self._reply(204)

    def _scripted(self, provider: str) -> bool:
        """Apply the next scripted action; True when it already answered the request."""
        state = self.server.state
        if state.latency_s:
            time.sleep(state.latency_s)
        action = state.next_action(provider)
        if action is None:
            return False
        if action.get("delay_s"):
            time.sleep(float(action["delay_s"]))
        status = int(action.get("status", 0))
        if not status:
            return False
        with state.lock:
            state.failures.append(
                {
                    "provider": provider,
                    "status": status,
                    "at": time.time(),
                    "retry_after": action.get("retry_after"),
                }
            )
        headers = {"Retry-After": str(action["retry_after"])} if "retry_after" in action else {}
        if provider == "twilio":
            code = int(action.get("code", 20500 if status >= 500 else 20429))
            self._reply(
                status,
                {
                    "code": code,
                    "message": action.get("message", "scripted"),
                    "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status,
                },
                headers,
            )
        else:
            self._reply(
                status,
                {
                    "errors": [
                        {"message": action.get("message", "scripted"), "field": None, "help": None}
                    ]
                },
                headers,
            )
        return True

    def _twilio(self, account: str, raw: bytes) -> None:
        state = self.server.state
        if not self.headers.get("Authorization", "").startswith("Basic "):
            self._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
            return
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        errors = twilio_message_errors(form)
        if errors:
            with state.lock:
                state.rejected["twilio"].append({"form": form, "errors": errors})
            code = 21211 if any("To " in e for e in errors) else 21604
            self._reply(400, {"code": code, "message": "; ".join(errors), "status": 400})
            return
        if self._scripted("twilio"):
            return
        message = _twilio_message(account, form)
        user = base64.b64decode(self.headers["Authorization"][6:]).decode().split(":")[0]
        with state.lock:
            state.messages[message["sid"]] = message
            state.requests["twilio"].append(
                {"form": form, "sid": message["sid"], "user": user, "at": time.time()}
            )
        self._reply(201, message)

    def _sendgrid(self, raw: bytes) -> None:
        state = self.server.state
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            self._reply(401, {"errors": [{"message": "authorization required"}]})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._reply(400, {"errors": [{"message": "invalid JSON", "field": None}]})
            return
        errors = sendgrid_mail_errors(body)
        if errors:
            with state.lock:
                state.rejected["sendgrid"].append({"body": body, "errors": errors})
            self._reply(400, {"errors": [{"message": e, "field": None} for e in errors]})
            return
        if self._scripted("sendgrid"):
            return
        message_id = secrets.token_urlsafe(16)
        with state.lock:
            state.requests["sendgrid"].append(
                {"body": body, "message_id": message_id, "at": time.time()}
            )
            if state.event_sink is not None:
                state.events.extend(processed_events(body, message_id))
        self._reply(202, None, {"X-Message-Id": message_id})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 overflowed when 32 send threads connected at once,
    # and the kernel reset connections a real provider would have taken.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.state = FakeState()

    def reset(self) -> None:
        self.state = FakeState()


class FakeProviders:
    """Both fakes on one loopback port, served from a background thread."""

    def __init__(self, port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._stopped = threading.Event()
        self._poster = threading.Thread(target=self._post_events, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def state(self) -> FakeState:
        return self._server.state

    def start(self) -> FakeProviders:
        self._thread.start()
        self._poster.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()

    def post_sendgrid_events(self, url: str, private_key: ec.EllipticCurvePrivateKey) -> None:
        """From now on (until `reset`), post a signed `processed` event to `url` for each
        email SendGrid accepts, as its event webhook does, retrying until it is taken."""
        with self.state.lock:
            self.state.event_sink = EventSink(url, private_key)

    def events_waiting(self) -> int:
        """Events accepted emails produced that the receiver has not taken yet."""
        with self.state.lock:
            return len(self.state.events)

    def _post_events(self) -> None:
        while not self._stopped.is_set():
            state = self.state
            sink = state.event_sink
            self._stopped.wait(sink.every_s if sink else 0.3)
            post_events(state)

    def reset(self) -> None:
        self._server.reset()

    def script(
        self,
        *,
        twilio: list[dict[str, Any]] | None = None,
        sendgrid: list[dict[str, Any]] | None = None,
        latency_ms: float | None = None,
    ) -> None:
        state = self.state
        with state.lock:
            state.script["twilio"].extend(twilio or [])
            state.script["sendgrid"].extend(sendgrid or [])
            if latency_ms is not None:
                state.latency_s = latency_ms / 1000

    def failures(self) -> list[dict[str, Any]]:
        """The scripted errors answered so far, with when."""
        with self.state.lock:
            return list(self.state.failures)

    def twilio_requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.requests["twilio"])

    def sendgrid_requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.requests["sendgrid"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeProviders(args.port)
    fake.script(latency_ms=args.latency_ms)
    print(fake.url, flush=True)
    fake._server.serve_forever()


if __name__ == "__main__":
    main()
