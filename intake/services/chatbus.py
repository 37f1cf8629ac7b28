"""Live Help's wake-up bus: "chat N has something new", between threads and processes.

One interface, two transports: :class:`MemoryBus` inside one process (the embedded
default) and :class:`RedisBus` (Redis pub/sub) when several processes serve the site.
The bus carries no text and no personal data, only a chat's id: the database is
where every message is, committed before it is announced, and a stream that wakes
up reads what came after the last event it sent. A lost or doubled announcement
therefore loses or doubles nothing; at worst a stream notices on its next wake-up.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any, Protocol

log = logging.getLogger("intake.chatbus")

CHANNEL_PREFIX = "intake:chat:"


class Waiter:
    """One stream's subscription: :meth:`wait` returns when the chat had news."""

    def __init__(self, bus: _LocalFanout, key: str) -> None:
        self._bus, self.key = bus, key
        self._event = threading.Event()

    def notify(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        woke = self._event.wait(timeout)
        self._event.clear()
        return woke

    def close(self) -> None:
        self._bus._remove(self)

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ChatBus(Protocol):
    def publish(self, key: str) -> None: ...
    def subscribe(self, key: str) -> Waiter: ...
    def close(self) -> None: ...


class _LocalFanout:
    """The waiters of this process, by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = defaultdict(set)

    def subscribe(self, key: str) -> Waiter:
        waiter = Waiter(self, key)
        with self._lock:
            self._waiters[key].add(waiter)
        return waiter

    def _remove(self, waiter: Waiter) -> None:
        with self._lock:
            waiters = self._waiters.get(waiter.key)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[waiter.key]

    def deliver(self, key: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(key, ()))
        for waiter in waiters:
            waiter.notify()


class MemoryBus(_LocalFanout):
    """In-process transport: one process serves every page (``intake serve``)."""

    def publish(self, key: str) -> None:
        self.deliver(key)

    def close(self) -> None:
        pass


class RedisBus(_LocalFanout):
    """Redis pub/sub between processes: one connection and one listening thread per
    process, whatever the number of streams it serves."""

    def __init__(self, url: str, prefix: str = CHANNEL_PREFIX) -> None:
        super().__init__()
        import redis

        self._prefix = prefix
        self._client: Any = redis.Redis.from_url(url, socket_connect_timeout=5,
                                                 health_check_interval=30)
        self._stop = threading.Event()
        # Subscribing happens in the listening thread, so a Redis that is down when the
        # process starts delays news to this process's streams (they poll the database
        # every few seconds anyway) and never stops the application from starting.
        self._thread = threading.Thread(target=self._listen, name="intake-chat-bus",
                                        daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub: Any = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(**{f"{self._prefix}*": self._on_message})
                while not self._stop.is_set():
                    pubsub.get_message(timeout=1.0)  # runs _on_message for each message
            except Exception as exc:  # noqa: BLE001 - reconnect and subscribe again
                log.warning("chat bus: Redis pub/sub failed (%s); reconnecting",
                            type(exc).__name__)
                self._stop.wait(1.0)
            finally:
                try:
                    pubsub.close()
                except Exception as exc:  # noqa: BLE001 - a dead connection: nothing to save
                    log.debug("chat bus: pubsub close failed (%s)", type(exc).__name__)

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = message.get("channel", b"")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        self.deliver(name[len(self._prefix):])

    def publish(self, key: str) -> None:
        try:
            self._client.publish(f"{self._prefix}{key}", b"1")
        except Exception as exc:  # noqa: BLE001 - the message is stored; streams poll too
            log.warning("chat bus: publish failed (%s)", type(exc).__name__)
        self.deliver(key)  # this process's own streams need not wait for Redis

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self._client.close()
        except Exception as exc:  # noqa: BLE001 - closing at shutdown: nothing to save
            log.debug("chat bus: close failed (%s)", type(exc).__name__)


def bus_for(url: str | None, prefix: str = CHANNEL_PREFIX) -> ChatBus:
    """Redis pub/sub for a ``redis://`` URL, else this process only."""
    if url and url.startswith(("redis://", "rediss://")):
        return RedisBus(url, prefix)
    return MemoryBus()
