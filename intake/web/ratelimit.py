"""In-process storage for the public forms' rate limits (fixed windows, no timer thread).

Flask-Limiter's ``memory://`` storage (``limits.storage.MemoryStorage``)
starts a ``threading.Timer`` after each hit whose previous timer has fired,
to expire old windows: under a steady stream of submissions that is a new
thread about every 10 ms, and thread starts and GIL hand-offs cost more than
the counting. Fixed windows need no timer: a counter past its expiry counts
as zero when read, and expired counters are swept inline, at most once per
``SWEEP_SECONDS``, so memory stays bounded by the addresses seen in one
window. Used with ``INTAKE_RATE_LIMIT_URL=memory`` (one process only) and as the
fallback while the configured storage is down.

:class:`FormRateLimit` checks the public forms' limit in the submission view,
with a ``limits`` fixed-window strategy on the counters the settings name
(:func:`counter_storage`): Redis, or without Redis the database table every
worker process shares (:class:`intake.services.ratelimits.DatabaseCounters`).
Counters kept per process would multiply the limit by the number of gunicorn
workers. Flask-Limiter's per-request hooks are not used: they would resolve
limits on every request (about 80-110 microseconds a submission on this
code's benchmark) for the one counter the submission view increments itself.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter, RateLimiter

from intake.services.ratelimits import DatabaseCounters

if TYPE_CHECKING:
    from intake.runtime import Runtime

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
    (Redis or the database down) the hit is counted in this process instead,
    and the failure logged at most once a minute.
    """

    PREFIX = "intake-forms"
    SCOPE = "forms-post"

    def __init__(self, strategy: RateLimiter, limit: str) -> None:
        self.items: list[RateLimitItem] = parse_many(limit)
        self._strategy = strategy
        self._fallback = FixedWindowRateLimiter(FixedWindowMemoryStorage())
        self._warned_at = float("-inf")

    @property
    def storage(self) -> Storage:
        return self._strategy.storage

    def hit(self, key: str) -> bool:
        """Count a request of ``key``; False if it is over a limit."""
        allowed = True
        for item in self.items:
            try:
                allowed = self._strategy.hit(item, self.PREFIX, self.SCOPE, key) and allowed
            except Exception as exc:  # noqa: BLE001 - any storage failure: count in memory
                now = time.monotonic()
                if now - self._warned_at >= 60:
                    self._warned_at = now
                    log.warning("rate-limit storage failed (%s); counting in this process",
                                type(exc).__name__)
                allowed = self._fallback.hit(item, self.PREFIX, self.SCOPE, key) and allowed
        return allowed


def counter_storage(runtime: Runtime) -> Storage:
    """Where the counters live, as ``INTAKE_RATE_LIMIT_URL`` says: Redis (every process
    on every host sees it), ``database`` (the shared table: every worker process sees it)
    or ``memory`` (this process only; for a single process)."""
    url = runtime.settings.rate_limit_url
    if url == "database":
        counters = DatabaseCounters(runtime.db)
        runtime.on_close(counters.close)
        return counters
    if url == "memory":
        log.warning("INTAKE_RATE_LIMIT_URL=memory: rate limits are counted in each process; "
                    "with several processes each one lets the whole limit through")
        return FixedWindowMemoryStorage()
    storage = storage_from_string(url)  # redis:// or rediss://
    assert isinstance(storage, Storage)  # the synchronous one (not limits.aio)
    return storage


def form_rate_limit(runtime: Runtime) -> FormRateLimit:
    """The forms' limit (``INTAKE_FORM_RATE_LIMIT``) on the configured counters."""
    return FormRateLimit(FixedWindowRateLimiter(counter_storage(runtime)),
                         runtime.settings.form_rate_limit)
