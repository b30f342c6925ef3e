"""Status changes/s through the events service's status.v1 consumer, beside raw consume.

Produces N status changes (queued, sent, delivered, each also sent twice to count redelivery)
for N/6 notifications of one agency with an active callback to status.v1 on a Tansu broker,
then times the real `ConsumerLoop` + `StatusRecorder` working through them on SQLite and
PostgreSQL (records/s, CPU ms per record of this process), and raw kafka-python consume of
the same topic on the same broker.

    .venv/bin/python -m bench.status_consumer --records 12000 --db sqlite,postgresql
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from kafka import KafkaConsumer, KafkaProducer
from kafka.consumer.fetcher import ConsumerRecord
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from avisa.broker import free_port, start_tansu, stop
from common import db
from common.consumer import ConsumerConfig, ConsumerLoop
from common.kafka import Producer, ensure_topics
from schemas.events import EventRef
from schemas.notifications import Channel, Status, StatusChange
from services.events import repository
from services.events.callbacks import store as callback_store
from services.events.consumer import StatusRecorder
from services.events.main import MIGRATIONS, VERSION_TABLE
from services.events.models import CallbackDelivery, StatusHistory

STEPS = (Status.QUEUED, Status.SENT, Status.DELIVERED)


def changes(count: int, agency: str) -> list[bytes]:
    """`count` messages: each notification's three steps, every step delivered twice."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out: list[bytes] = []
    for index in range(count // 6 + 1):
        event = EventRef(source=f"{agency}/bench", id=f"e{index}", type="t", subject=f"s{index}")
        nid = str(uuid.uuid4())
        for step, status in enumerate(STEPS):
            change = StatusChange(
                notification_id=nid,
                event=event,
                rule="bench",
                status=status,
                channel=Channel.SMS,
                at=start + timedelta(seconds=index, milliseconds=step),
            )
            out += [change.model_dump_json().encode()] * 2
    return out[:count]


def produce(servers: str, topic: str, messages: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=servers, linger_ms=5, batch_size=256_000)
    for message in messages:
        producer.send(topic, message)
    producer.flush()
    producer.close()


def raw_consume(servers: str, topic: str, count: int) -> tuple[float, float]:
    """Seconds and CPU seconds for kafka-python to read `count` records of `topic`."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    seen, wall, cpu = 0, time.monotonic(), time.process_time()
    while seen < count:
        seen += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
        if seen == 0:  # the group join is not consuming: time from the first record on
            wall, cpu = time.monotonic(), time.process_time()
    figures = time.monotonic() - wall, time.process_time() - cpu
    consumer.close()
    return figures


def prepare(url: str, agency: str) -> tuple[Engine, sessionmaker[Session]]:
    """A migrated database with `agency` and its active callback."""
    db.migrate(url, script_location=MIGRATIONS, version_table=VERSION_TABLE)
    engine = db.make_engine(url)
    sessions = db.make_sessions(engine)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        repository.add_agency(session=session, agency_id=agency, name="Bench", now=now)
        session.flush()
        callback_store.put(
            session=session, agency_id=agency, url="http://127.0.0.1:9/", secret="s", now=now
        )
    return engine, sessions


class Timed:
    """The recorder, timed from its first record on (the group join is not consuming)."""

    def __init__(self, recorder: StatusRecorder) -> None:
        self.recorder = recorder
        self.started: tuple[float, float] | None = None

    def handle(self, record: ConsumerRecord) -> None:
        if self.started is None:
            self.started = time.monotonic(), time.process_time()
        self.recorder.handle(record)

    def flush(self) -> None:
        self.recorder.flush()


def consume(url: str, servers: str, topic: str, count: int, agency: str) -> None:
    engine, sessions = prepare(url, agency)
    recorded = [0]

    def count_recorded(n: int) -> None:
        recorded[0] += n

    timed = Timed(StatusRecorder(sessions, on_recorded=count_recorded))
    config = ConsumerConfig([servers], f"bench-{uuid.uuid4().hex[:6]}", [topic], "deadletter.v1")
    loop = ConsumerLoop(config, timed, Producer([servers], client_id="bench"))
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    while recorded[0] < count // 2 and thread.is_alive():
        time.sleep(0.005)
    assert timed.started is not None, "the recorder never ran"
    elapsed = time.monotonic() - timed.started[0]
    used = time.process_time() - timed.started[1]
    loop.stop()
    thread.join(10)
    with sessions() as session:
        history = session.scalar(select(func.count()).select_from(StatusHistory))
        queued = session.scalar(select(func.count()).select_from(CallbackDelivery))
    engine.dispose()
    print(
        f"  recorder: {count / elapsed:,.0f} records/s, {used * 1000 / count:.3f} CPU ms/record "
        f"({elapsed:.2f} s; {history} history rows, {queued} callbacks queued)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=12_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    port = free_port()
    broker = start_tansu(port)
    servers = f"127.0.0.1:{port}"
    try:
        for kind in args.db.split(","):
            topic = f"status-bench-{uuid.uuid4().hex[:6]}"
            ensure_topics([servers], [topic, "deadletter.v1"], partitions=1)
            agency = f"ag{uuid.uuid4().hex[:6]}"
            produce(servers, topic, changes(args.records, agency))
            wall, cpu = raw_consume(servers, topic, args.records)
            print(f"{kind}:")
            print(
                f"  raw kafka-python consume: {args.records / wall:,.0f} records/s, "
                f"{cpu * 1000 / args.records:.3f} CPU ms/record"
            )
            if kind == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    consume(f"sqlite:///{folder}/b.db", servers, topic, args.records, agency)
            else:
                from tests.conftest import create_postgres_database, drop_postgres_database

                url = create_postgres_database()
                try:
                    consume(url, servers, topic, args.records, agency)
                finally:
                    drop_postgres_database(url)
    finally:
        stop(broker)


if __name__ == "__main__":
    main()
