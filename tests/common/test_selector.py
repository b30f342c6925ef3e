"""`QuietSelector`: the default selector's answers, without formatting a socket on a miss."""

from __future__ import annotations

import selectors
import socket
from collections.abc import Iterator

import pytest

from common.kafka import QuietSelector


class CountedSocket(socket.socket):
    """A socket that counts how often its repr is made."""

    reprs = 0

    def __repr__(self) -> str:
        CountedSocket.reprs += 1
        return super().__repr__()


@pytest.fixture
def pair() -> Iterator[tuple[CountedSocket, socket.socket]]:
    left, right = socket.socketpair()
    counted = CountedSocket(fileno=left.detach())
    CountedSocket.reprs = 0
    yield counted, right
    counted.close()
    right.close()


def test_a_socket_not_registered_is_a_key_error_without_its_repr(pair) -> None:  # type: ignore[no-untyped-def]
    sock, _ = pair
    quiet, default = QuietSelector(), selectors.DefaultSelector()

    with pytest.raises(KeyError) as error:
        quiet.get_key(sock)
    assert error.value.args == (sock,)
    assert CountedSocket.reprs == 0
    with pytest.raises(KeyError):
        default.get_key(sock)
    assert CountedSocket.reprs >= 1  # what the standard selector does on every miss


def test_keys_follow_register_modify_and_unregister(pair) -> None:  # type: ignore[no-untyped-def]
    sock, other = pair
    selector = QuietSelector()

    registered = selector.register(sock, selectors.EVENT_READ, "reader")
    assert selector.get_key(sock) == registered == selector.get_map()[sock]
    modified = selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, "both")
    assert selector.get_key(sock) == modified
    assert (modified.events, modified.data) == (
        selectors.EVENT_READ | selectors.EVENT_WRITE,
        "both",
    )
    renamed = selector.modify(sock, modified.events, "renamed")
    assert selector.get_key(sock.fileno()).data == "renamed" == renamed.data
    other.send(b"x")
    assert [key.data for key, _ in selector.select(timeout=1)] == ["renamed"]

    selector.unregister(sock)
    with pytest.raises(KeyError):
        selector.get_key(sock)
    selector.close()


def test_a_closed_socket_is_still_found_and_unregistered() -> None:
    left, right = socket.socketpair()
    selector = QuietSelector()
    key = selector.register(left, selectors.EVENT_READ, "data")
    left.close()  # fileno() is now -1: only the lookup by object finds it

    assert selector.get_key(left) == key
    selector.unregister(left)
    with pytest.raises(ValueError, match="Invalid file descriptor"):  # as the standard one
        selector.get_key(left)
    right.close()
    selector.close()
