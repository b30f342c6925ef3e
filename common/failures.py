"""Which failures are transient: the consumer loop retries those and dead-letters the rest.

A consumer that retried every error would let one message that can never succeed (a date out
of range, a record too big for the broker) block its partition for ever; one that dead-lettered
every error would park good messages whenever the database blinked. So the list of transient
failures is explicit and short: the environment is unavailable (database, broker, network),
not the message. Anything else raised while handling a message is about that message.
"""

from __future__ import annotations

from kafka.errors import KafkaError
from sqlalchemy import exc as sql

from common.kafka import REJECTED_RECORD, BrokerUnavailable, InvalidMessage, MessageRejected

_TRANSIENT = (
    BrokerUnavailable,
    sql.OperationalError,
    sql.InterfaceError,
    sql.DisconnectionError,
    sql.TimeoutError,
)


_DRIVERS = frozenset({"sqlite3", "psycopg", "psycopg2"})


def _driver_unavailable(error: BaseException) -> bool:
    """A database driver's own OperationalError or InterfaceError (PEP 249), raised without
    SQLAlchemy's wrapping; matched by name so common/ imports no driver."""
    kind = type(error)
    return kind.__module__.split(".")[0] in _DRIVERS and any(
        base.__name__ in {"OperationalError", "InterfaceError"} for base in kind.__mro__
    )


def _transient_here(error: BaseException) -> bool | None:
    """True or False when `error` alone decides, None when its cause must decide."""
    if isinstance(error, InvalidMessage | MessageRejected):
        return False
    if isinstance(error, _TRANSIENT) or _driver_unavailable(error):
        return True
    if isinstance(error, sql.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, KafkaError):
        # The client's own errors are about the broker or the group; only these few are
        # about one record, and retrying that record cannot help.
        return not isinstance(error, REJECTED_RECORD)
    # Connection refused/reset, timeouts, a full disk: the machine, not the message.
    if isinstance(error, OSError):
        return True
    return None


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same message later may succeed.

    Follows explicit causes (`raise ... from error`), so a transient error wrapped by a
    handler's own exception stays transient.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        verdict = _transient_here(current)
        if verdict is not None:
            return verdict
        current = current.__cause__
    return False
