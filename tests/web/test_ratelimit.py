"""The forms' in-process rate-limit storage: fixed windows that expire without a timer thread."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from limits import parse
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from intake.web import ratelimit
from intake.web.ratelimit import FixedWindowMemoryStorage
from tests.web.conftest import Clock


def test_scheme_is_registered() -> None:
    assert isinstance(storage_from_string("intake-memory://"), FixedWindowMemoryStorage)


def test_fixed_window_limits_and_expires(clock: Clock) -> None:
    limiter = FixedWindowRateLimiter(FixedWindowMemoryStorage())
    per_minute = parse("3/minute")
    assert [limiter.hit(per_minute, "a") for _ in range(4)] == [True, True, True, False]
    assert limiter.hit(per_minute, "b")  # another key has its own window
    assert limiter.get_window_stats(per_minute, "a").remaining == 0
    clock.advance(61)
    assert limiter.hit(per_minute, "a")  # a new window
    assert limiter.get_window_stats(per_minute, "a").remaining == 2


def test_expired_windows_are_swept_so_memory_stays_bounded(clock: Clock) -> None:
    storage = FixedWindowMemoryStorage()
    limiter = FixedWindowRateLimiter(storage)
    per_second = parse("5/second")
    for n in range(1000):
        limiter.hit(per_second, f"client-{n}")
    assert len(storage) == 1000
    clock.advance(ratelimit.SWEEP_SECONDS + 1)
    limiter.hit(per_second, "one more")
    assert len(storage) == 1


def test_no_thread_is_started_per_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = FixedWindowMemoryStorage()
    limiter = FixedWindowRateLimiter(storage)
    started: list[threading.Thread] = []
    real_start = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        started.append(self)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for n in range(200):
        limiter.hit(parse("1000/minute"), f"k{n % 7}")
    assert started == []


def test_concurrent_hits_are_all_counted() -> None:
    storage = FixedWindowMemoryStorage()
    limiter = FixedWindowRateLimiter(storage)
    limit = parse("100000/hour")
    start = threading.Barrier(8)

    def run() -> None:
        start.wait()
        for _ in range(500):
            limiter.hit(limit, "shared")

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert limiter.get_window_stats(limit, "shared").remaining == 100000 - 8 * 500


def _strategy(storage_uri: str) -> FixedWindowRateLimiter:
    storage = storage_from_string(storage_uri)
    assert isinstance(storage, Storage)
    return FixedWindowRateLimiter(storage)


def test_every_limit_given_counts_and_any_one_refuses() -> None:
    from intake.web.ratelimit import FormRateLimit

    rate = FormRateLimit(_strategy("intake-memory://"), "3/minute;4/hour")
    assert [rate.hit("a") for _ in range(4)] == [True, True, True, False]
    assert rate.hit("b")  # another client has its own count


def test_a_storage_outage_is_counted_in_process_and_never_refuses_all(
        caplog: pytest.LogCaptureFixture) -> None:
    import socket

    from intake.web.ratelimit import FormRateLimit

    with socket.socket() as s:  # a port nothing listens on: Redis is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rate = FormRateLimit(_strategy(f"redis://127.0.0.1:{port}/0"), "2/minute")
    with caplog.at_level("WARNING", logger="intake.web.ratelimit"):
        assert [rate.hit("a") for _ in range(3)] == [True, True, False]
    warnings = [r for r in caplog.records if "rate-limit storage failed" in r.getMessage()]
    assert len(warnings) == 1  # once, not for every hit


def test_the_intake_app_runs_no_flask_limiter_hook(tmp_path: Path) -> None:
    from intake import create_app
    from intake.runtime import Runtime
    from tests.conftest import make_settings

    runtime = Runtime(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}"))
    try:
        app = create_app(runtime=runtime)
    finally:
        runtime.close()
    hooks = [*app.before_request_funcs.get(None, []), *app.after_request_funcs.get(None, []),
             *app.teardown_request_funcs.get(None, [])]
    modules = {getattr(getattr(h, "func", h), "__module__", "") for h in hooks}
    assert not [m for m in modules if m.startswith("flask_limiter")], modules
