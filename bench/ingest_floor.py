"""The HTTP floor under the events service: what uvicorn and FastAPI alone cost a request here.

    .venv/bin/python -m bench.ingest_floor --posts 6000 --runs 2

Serves three apps that do no work, each in its own process with the events service's server
settings (uvicorn, uvloop, httptools, no access log), and drives them with the ingest bench's
load generator (`bench.ingest_load`, the same single-event bodies, 64 in flight):

- `asgi`: a bare ASGI callable that reads the body and answers 202;
- `lane`: the same answer from an ASGI middleware in front of a FastAPI app (the shape of the
  events service's intake lane, without its work);
- `route`: a FastAPI route that reads and parses the body and answers 202.

Requests per server CPU-second (from /proc) bound what any intake on this stack can reach on
this machine: the events service cannot do more single POSTs a CPU-second than `asgi` does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from avisa.broker import free_port
from bench.__main__ import results_path
from bench.ingest_events import ROOT, measured

APPS = ("asgi", "lane", "route")
_ANSWER = b'{"accepted":1,"duplicates":0,"ids":["x"]}'
_HEADERS = [(b"content-type", b"application/json")]


async def _drain_and_answer(receive: Receive, send: Send) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 202, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _ANSWER})


async def bare_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await _drain_and_answer(receive, send)


class _Lane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/events":
            await self.app(scope, receive, send)
            return
        await _drain_and_answer(receive, send)


def make_app(kind: str) -> ASGIApp:
    """One of `APPS`."""
    if kind == "asgi":
        return bare_asgi
    app = FastAPI()
    if kind == "lane":
        app.add_middleware(_Lane)
        return app

    @app.post("/v1/events", status_code=202)
    async def publish(request: Request) -> Response:
        json.loads(await request.body())
        return Response(_ANSWER, status_code=202, media_type="application/json")

    return app


def serve(kind: str, port: int) -> None:
    uvicorn.run(make_app(kind), host="127.0.0.1", port=port, log_config=None, access_log=False)


def _started(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "bench.ingest_floor", "--serve", kind, "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)  # any answer: the server is up
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the {kind} app did not start")


def floor(kind: str, posts: int, connections: int) -> dict[str, Any]:
    """Requests per server CPU-second of one app, after a warm-up."""
    process, url = _started(kind)
    try:
        measured(process.pid, url, "single", 500, connections, first=10)
        result = measured(process.pid, url, "single", posts, connections, first=1_000_000)
    finally:
        process.terminate()
        process.wait(10)
    return {
        "statuses": result["statuses"],
        "per_s": posts / result["elapsed_s"],
        "per_server_cpu_s": posts / result["service_cpu_s"],
        "server_cpu_us": result["service_cpu_s"] / posts * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=6000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--runs", type=int, default=2, help="runs of each app, alternating")
    parser.add_argument("--serve", choices=APPS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in APPS}
    for _ in range(args.runs):
        for kind in APPS:
            runs[kind].append(floor(kind, args.posts, args.connections))
    for kind, results in runs.items():
        rates = [round(r["per_server_cpu_s"]) for r in results]
        cost = statistics.median(r["server_cpu_us"] for r in results)
        print(
            f"{kind:<6} {statistics.median(rates):7.0f} req a server CPU-second   "
            f"({cost:.0f} µs a request; runs: {rates})"
        )
    path = results_path("ingest-floor", "json")
    path.write_text(json.dumps(runs, indent=2))
    print(f"results: {path}")


if __name__ == "__main__":
    main()
