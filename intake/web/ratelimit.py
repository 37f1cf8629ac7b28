"""In-process storage for the public forms' rate limits (fixed windows, no timer thread).

Flask-Limiter's ``memory://`` storage (``limits.storage.MemoryStorage``)
starts a ``threading.Timer`` after each hit whose previous timer has fired,
to expire old windows: under a steady stream of submissions that is a new
thread about every 10 ms, and thread starts and GIL hand-offs cost more than
the counting. Fixed windows need no timer: a counter past its expiry counts
as zero when read, and expired counters are swept inline, at most once per
``SWEEP_SECONDS``, so memory stays bounded by the addresses seen in one
window. Used as ``intake-memory://`` when no Redis is configured.

:class:`FormRateLimit` checks the public forms' limit in the submission view,
on the storage and strategy Flask-Limiter built from the settings (Redis or
``intake-memory://``, fixed windows). Flask-Limiter's own per-request hook
resolves the limits of the endpoint, its blueprint and the application on
every request, about 80-110 microseconds a submission on this code's
benchmark, for one counter increment of about 3; with its response and
teardown hooks, about 3.5% of a submission's time in the process, for no
limit (it declares none). :func:`detach_request_hooks` takes them off.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask
from flask_limiter import Limiter
from limits import RateLimitItem, parse_many
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter, RateLimiter

log = logging.getLogger("intake.web.ratelimit")

SWEEP_SECONDS = 30.0


class FixedWindowMemoryStorage(Storage):
    STORAGE_SCHEME = ["intake-memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False,
                 **options: Any) -> None:
        self._counts: dict[str, int] = {}
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def _live(self, key: str, now: float) -> int:
        if self._expiry.get(key, 0.0) <= now:
            self._counts.pop(key, None)
            self._expiry.pop(key, None)
            return 0
        return self._counts[key]

    def _sweep(self, now: float) -> None:
        for key in [k for k, at in self._expiry.items() if at <= now]:
            del self._expiry[key]
            self._counts.pop(key, None)
        self._next_sweep = time.monotonic() + SWEEP_SECONDS

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            if time.monotonic() >= self._next_sweep:
                self._sweep(now)
            count = self._live(key, now) + amount
            self._counts[key] = count
            if count == amount:  # a new window starts with this hit
                self._expiry[key] = now + expiry
            return count

    def get(self, key: str) -> int:
        with self._lock:
            return self._live(key, time.time())

    def get_expiry(self, key: str) -> float:
        with self._lock:
            return self._expiry.get(key, time.time())

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            cleared = len(self._counts)
            self._counts.clear()
            self._expiry.clear()
            return cleared

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)
            self._expiry.pop(key, None)

    def __len__(self) -> int:
        """Windows held in memory (expired ones may linger until the next sweep)."""
        return len(self._counts)


class FormRateLimit:
    """The public forms' per-client limit (Flask-Limiter notation, e.g. ``10/minute;50/hour``).

    A hit counts against every limit given, and is refused if one is exceeded.
    A limiter outage must never lose a submission: when the storage fails
    (Redis down) the hit is counted in this process instead, and the failure
    logged at most once a minute.
    """

    SCOPE = "forms-post"

    def __init__(self, limiter: Limiter, limit: str) -> None:
        self.items: list[RateLimitItem] = parse_many(limit)
        self._strategy: RateLimiter = limiter.limiter
        self._fallback = FixedWindowRateLimiter(FixedWindowMemoryStorage())
        self._warned_at = float("-inf")

    def hit(self, key: str) -> bool:
        """Count a request of ``key``; False if it is over a limit."""
        allowed = True
        for item in self.items:
            try:
                allowed = self._strategy.hit(item, self.SCOPE, key) and allowed
            except Exception as exc:  # noqa: BLE001 - any storage failure: count in memory
                now = time.monotonic()
                if now - self._warned_at >= 60:
                    self._warned_at = now
                    log.warning("rate-limit storage failed (%s); counting in this process",
                                type(exc).__name__)
                allowed = self._fallback.hit(item, self.SCOPE, key) and allowed
        return allowed


def detach_request_hooks(app: Flask, limiter: Limiter) -> int:
    """Take ``limiter``'s before-request, after-request and teardown hooks off ``app``;
    the number taken off (3 with the Flask-Limiter this was written for).

    For a limiter whose storage and strategy only :class:`FormRateLimit` uses, with a
    request filter that excuses every request (see :func:`intake.web.forms.init_app`):
    its hooks would look for limits on every request and count none.
    """

    def ours(hook: Any) -> bool:
        if getattr(hook, "__self__", None) is limiter:  # a bound method of the limiter
            return True
        # The after-request hook is a partial(f, limiter).
        args: tuple[Any, ...] = getattr(hook, "args", ())
        return bool(args) and args[0] is limiter

    registries: tuple[dict[Any, list[Any]], ...] = (
        app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    taken = 0
    for registry in registries:
        hooks = registry.get(None, [])
        kept = [hook for hook in hooks if not ours(hook)]
        if len(kept) != len(hooks):
            registry[None] = kept
            taken += len(hooks) - len(kept)
    return taken
