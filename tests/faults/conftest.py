from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from avisa.broker import free_port, start_tansu, stop
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.system import System
from tests.faults.pgserver import PrivateServer
from tests.faults.proxy import TcpProxy

# Short timeouts so a restarted consumer gets its partitions back in seconds, not half a minute.
FAULT_ENV = {
    "AVISA_KAFKA_SESSION_TIMEOUT_MS": "3000",
    "AVISA_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
    "AVISA_KAFKA_ACK_TIMEOUT_S": "3",
    "AVISA_STALE_PENDING_S": "3",
    # A call ends (or times out, see the storm's late answers) well before its attempt counts
    # as cut by a crash.
    "AVISA_PROVIDER_TIMEOUT_S": "4",
    "AVISA_RECONCILE_AFTER_S": "8",
    "AVISA_RECONCILE_INTERVAL_S": "1",
}

# SendGrid's signed event webhook, posted to by the fake: an email whose send a crash cut is
# settled by its `processed` event, or sent again when none comes within the wait.
EVENTS_KEY = ec.generate_private_key(ec.SECP256R1())
EVIDENCE_ENV = {
    "SENDGRID_WEBHOOK_PUBLIC_KEY": base64.b64encode(
        EVENTS_KEY.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode(),
    "AVISA_SENDGRID_EVENT_WAIT_S": "15",
}


@dataclass
class ProxiedBroker:
    """A Tansu broker that clients reach only through a TCP proxy that can cut them off."""

    proxy: TcpProxy
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"


@pytest.fixture
def proxied_broker() -> Iterator[ProxiedBroker]:
    broker_port = free_port()
    proxy = TcpProxy(broker_port)
    process = start_tansu(broker_port, advertised_port=proxy.port)
    yield ProxiedBroker(proxy=proxy, port=broker_port)
    proxy.close()
    stop(process)


@pytest.fixture
def database_server() -> Iterator[PrivateServer]:
    """A PostgreSQL server of the test's own, which it may restart."""
    server = PrivateServer().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database: on the machine's server, or (marked `own_database_server`) on a
    private one that the test restarts without disturbing the other tests."""
    if request.node.get_closest_marker("own_database_server"):
        server: PrivateServer = request.getfixturevalue("database_server")
        yield server.url
        return
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture
def fault_system(proxied_broker, postgres_url, providers, tmp_path) -> Iterator[System]:  # type: ignore[no-untyped-def]
    running = System(
        bootstrap=proxied_broker.bootstrap,
        database_url=postgres_url,
        providers_url=providers.url,
        workdir=tmp_path,
        topic_prefix=f"f{uuid.uuid4().hex[:8]}.",
        extra_env=FAULT_ENV | EVIDENCE_ENV,
    )
    running.start()
    providers.post_sendgrid_events(
        f"{running.services['notifier'].url}/v1/providers/sendgrid/events", EVENTS_KEY
    )
    applied = running.avisa(
        "rules", "apply", "-f", "examples", "--url", running.services["rules"].url
    )
    assert applied.returncode == 0, applied.stderr
    yield running
    running.stop()
