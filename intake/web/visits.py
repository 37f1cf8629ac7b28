"""Visit statistics at the edge (issue 29, promise P1): counters that identify no one.

After each request to a counted public page (:data:`COUNTED`) one cell of the
day's counters goes up by one: the route template (``/status/<token>``, never
the token), the form, the referrer's host (never its URL), the browser and OS
family (the User-Agent is parsed in memory and dropped; families outside
:data:`BROWSERS` / :data:`SYSTEMS` are "Other", so no string of the
User-Agent's own can become a cell), the page language and the outcome: a
page view, a submission, a validation error (the views say which with
:func:`mark`) or other.

Unique visitors per day: a keyed hash of (address, User-Agent, day) under a
random key of the day (Plausible's way). The key lives only in this process's
memory, or in Redis with a time-to-live of two days when ``INTAKE_RATE_LIMIT_URL``
is Redis (every process then uses the same key and adds the hash to the same
HyperLogLog, so visitors are counted once across processes). Yesterday's key
is gone, so yesterday's visitors cannot be linked to today's. Neither the
hash, the address nor the User-Agent is written anywhere.

Counters are kept in memory and written in one transaction every
``INTAKE_STATS_FLUSH_SECONDS`` and when the process stops
(:func:`intake.services.visits.write_batch`). Nothing here logs a request.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import re
import secrets
import threading
import weakref
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from flask import Flask, Response, g, request
from ua_parser import BasicResolver, Parser, load_builtins

from intake.runtime import Runtime
from intake.services.visits import Batch, Cell, write_batch

log = logging.getLogger("intake.visits")

#: The public pages counted, by endpoint. Add one line for a new public page.
COUNTED = frozenset({
    "forms.show",        # /forms/<slug>
    "forms.submit",      # POST /forms/<slug>
    "forms.embed",       # /embed/<slug>
    "status.view",       # /status/<token>
    "status.withdraw",   # POST /status/<token>/withdraw
    "records.listing",   # /records
    "records.record",    # /records/<record_number>
    "help.start",        # /help (Live Help)
    "help.embed",        # /embed/help
    "help.begin",        # POST /help: a chat started, or the page again with errors
})
#: The browser and OS families a cell may name; anything else is "Other".
BROWSERS = frozenset({
    "Chrome", "Chrome Mobile", "Chrome Mobile iOS", "Chrome Mobile WebView", "Chromium",
    "Edge", "Edge Mobile", "Firefox", "Firefox Mobile", "Firefox iOS", "Safari",
    "Mobile Safari", "Mobile Safari UI/WKWebView", "Opera", "Opera Mobile", "Samsung Internet",
    "IE", "IE Mobile", "UC Browser", "Yandex Browser", "Brave", "Vivaldi", "DuckDuckGo Mobile",
    "Facebook", "Instagram", "Google", "HeadlessChrome", "curl", "Python Requests",
})
SYSTEMS = frozenset({
    "Windows", "Mac OS X", "iOS", "iPadOS", "Android", "Linux", "Ubuntu", "Fedora",
    "Chrome OS", "Debian", "FreeBSD",
})
LANGUAGES = frozenset({"en", "es"})
OUTCOMES = frozenset({"view", "submission", "invalid", "other"})
_HOST_RE = re.compile(r"^[a-z0-9.-]{1,253}$")
_IPV4_RE = re.compile(r"^[0-9.]+$")
_OUTCOME_KEY = "visit_outcome"
EXTENSION = "intake.visits"
KEY_TTL_SECONDS = 2 * 24 * 3600


def mark(outcome: str) -> None:
    """Say what this request was: "submission" or "invalid" (a page view is the default)."""
    g.setdefault(_OUTCOME_KEY, outcome)


class _Families:
    """Browser and OS family of a User-Agent, cached by the string's hash, never the string.

    The key is Python's own salted hash of the string (random per process): no
    User-Agent is kept, and a collision at worst files one visit under another family.
    """

    def __init__(self, size: int = 2048) -> None:
        self._parser = Parser(BasicResolver(load_builtins()))  # no cache of UA strings
        self._cache: dict[int, tuple[str, str]] = {}
        self._size = size

    def __call__(self, ua: str) -> tuple[str, str]:
        key = hash(ua)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        ua = ua[:512]
        browser = self._parser.parse_user_agent(ua)
        system = self._parser.parse_os(ua)
        found = (browser.family if browser and browser.family in BROWSERS else "Other",
                 system.family if system and system.family in SYSTEMS else "Other")
        if len(self._cache) >= self._size:
            self._cache.clear()  # a new set of browsers: start again (no LRU on the hot path)
        self._cache[key] = found
        return found


class _DayKeys:
    """The random key of the day: in memory, or shared through Redis with a TTL."""

    def __init__(self, redis_url: str | None) -> None:
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url)
        self._day: date | None = None
        self._key = b""
        self._lock = threading.Lock()

    @property
    def shared(self) -> bool:
        return self._redis is not None

    def key(self, day: date) -> bytes:
        if day != self._day:
            with self._lock:  # one key per day in this process, even at midnight
                if day != self._day:
                    self._day, self._key = day, self._fetch(day)
        return self._key

    def _fetch(self, day: date) -> bytes:
        fresh = secrets.token_bytes(32)
        if self._redis is None:
            return fresh
        name = f"intake:visits:key:{day.isoformat()}"
        try:
            self._redis.set(name, fresh, nx=True, ex=KEY_TTL_SECONDS)
            shared: bytes | None = self._redis.get(name)
        except Exception as exc:  # noqa: BLE001 - a page never fails for its statistics
            log.warning("visit statistics: Redis unreachable (%s); this process's own key "
                        "for today", type(exc).__name__)
            return fresh
        return shared if shared and len(shared) == 32 else fresh

    def add_and_count(self, seen: dict[tuple[date, str, str], set[bytes]]
                      ) -> dict[tuple[date, str, str], int]:
        """Add the hashes to the shared HyperLogLogs; the totals (Redis only)."""
        totals = {}
        pipe = self._redis.pipeline()
        names = []
        for (day, route, form), hashes in seen.items():
            name = f"intake:visits:hll:{day.isoformat()}:{route}:{form}"
            pipe.pfadd(name, *hashes)
            pipe.expire(name, KEY_TTL_SECONDS)
            names.append(((day, route, form), name))
        pipe.execute()
        pipe = self._redis.pipeline()
        for _, name in names:
            pipe.pfcount(name)
        for (cell_key, _), n in zip(names, pipe.execute(), strict=True):
            totals[cell_key] = int(n)
        return totals


class VisitCounter:
    """This process's counters: counted per request, written in batches."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self._db = runtime.db
        self._interval = settings.stats_flush_seconds
        url = settings.rate_limit_url
        self._keys = _DayKeys(url if url.startswith("redis") else None)
        self._shared = self._keys.shared
        self._families = _Families()
        # The day, its ISO form and its key, worked out once a day, not once a request.
        self._today: tuple[date | None, str, bytes] = (None, "", b"")
        self._lock = threading.Lock()
        self._counts: Counter[tuple[Any, ...]] = Counter()  # Cell's fields, in order
        self._new: dict[tuple[date, str, str], set[bytes]] = {}  # hashes since last flush
        self._seen: dict[tuple[date, str, str], set[bytes]] = {}  # today's (in-memory key)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- counting ---------------------------------------------------------------------

    def count(self, *, route: str, form: str, referrer: str, user_agent: str, address: str,
              language: str, outcome: str, day: date | None = None) -> None:
        day = day or datetime.now(UTC).date()
        browser, system = self._families(user_agent)
        today = self._today
        if today[0] != day:
            today = self._today = (day, day.isoformat(), self._keys.key(day))
        # A keyed hash (BLAKE2b's own keyed mode, one call) under the day's key.
        visitor = hashlib.blake2b(f"{address}\0{user_agent}\0{today[1]}".encode(),
                                  key=today[2], digest_size=16).digest()
        cell = (day, route, form, referrer, browser, system, language, outcome)
        where = (day, route, form)
        with self._lock:
            counts = self._counts
            counts[cell] = counts.get(cell, 0) + 1
            if self._shared:
                self._new.setdefault(where, set()).add(visitor)
            else:
                seen = self._seen.setdefault(where, set())
                if visitor not in seen:
                    seen.add(visitor)
                    self._new.setdefault(where, set()).add(visitor)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="visit-counter",
                                                    daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()

    # -- writing ----------------------------------------------------------------------

    def flush(self) -> None:
        """Write what was counted since the last flush (one transaction); never raises."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
            new, self._new = self._new, {}
            today = datetime.now(UTC).date()
            for where in [w for w in self._seen if w[0] < today]:
                del self._seen[where]  # yesterday's hashes go with yesterday's key
        if not counts and not new:
            return
        try:
            cells = {Cell(*key): n for key, n in counts.items()}
            if self._keys.shared:
                try:
                    totals = self._keys.add_and_count(new)
                except Exception as exc:  # noqa: BLE001 - the counts are written all the same
                    log.warning("visit statistics: Redis unreachable (%s); today's unique "
                                "visitors of this batch are not counted", type(exc).__name__)
                    totals = {}
                batch = Batch(cells, {}, totals)
            else:
                batch = Batch(cells, {w: len(h) for w, h in new.items()}, {})
            write_batch(self._db, batch)
        except Exception as exc:  # noqa: BLE001 - statistics never break a page; say so
            log.warning("visit counters not written (%s); kept for the next flush",
                        type(exc).__name__)
            with self._lock:
                self._counts.update(counts)
                if not self._keys.shared:
                    for where, hashes in new.items():
                        self._new.setdefault(where, set()).update(hashes)

    def close(self) -> None:
        """Stop the flushing thread and write the last counts (at shutdown)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()


_OPEN: weakref.WeakSet[VisitCounter] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Write every live counter's last counts when the process exits (gunicorn workers)."""
    for counter in list(_OPEN):
        counter.close()


def _referrer_host(raw: str | None, own: Any) -> str:
    """The referrer's host name only (no scheme, port, path, query or fragment).

    ``own`` is this site's host name, or the request to read it from (only when there is
    a referrer to compare: most requests have none).
    """
    if not raw:
        return "(none)"
    _, sep, rest = raw.partition("//")
    if not sep:
        return "(other)"
    for stop in "/?#":
        rest = rest.split(stop, 1)[0]
    host = rest.rpartition("@")[2].lower()
    if host.startswith("["):
        return "(other)"  # an IPv6 literal: an address, not a site
    host = host.split(":", 1)[0].rstrip(".")
    if not host:
        return "(other)"
    own_host = own if isinstance(own, str) else own.host.partition(":")[0].lower()
    if host == own_host:
        return "(this site)"
    if _IPV4_RE.match(host):
        return "(other)"  # an address, not a site's name
    return host if _HOST_RE.match(host) else "(other)"


def _language() -> str:
    lang = g.get("forms_lang") or g.get("page_lang")  # what the page chose, if it said
    if lang is None:
        from flask_babel import get_locale

        locale = get_locale()
        lang = locale.language if locale is not None else "en"
    return lang if lang in LANGUAGES else "other"


def init_app(app: Flask) -> None:
    """Count the public pages of :data:`COUNTED`; write the counters at shutdown too."""
    runtime: Runtime = app.extensions["intake"]
    counter = app.extensions[EXTENSION] = VisitCounter(runtime)
    runtime.on_close(counter.close)
    _OPEN.add(counter)

    @app.after_request
    def _count(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
        if req.endpoint not in COUNTED or req.url_rule is None:
            return response
        if response.status_code == 404 or response.status_code >= 500:
            return response  # unknown forms and tokens make no cells
        ctx = g._get_current_object()
        outcome = ctx.get(_OUTCOME_KEY) or ("view" if req.method == "GET" else "other")
        lang = ctx.get("forms_lang") or ctx.get("page_lang") or _language()
        try:
            _count_one(counter, req, outcome, lang)
        except Exception as exc:  # noqa: BLE001 - a page never fails for its statistics
            log.warning("visit not counted (%s)", type(exc).__name__)
        return response


def _count_one(counter: VisitCounter, req: Any, outcome: str, lang: str) -> None:
    environ = req.environ
    counter.count(route=req.url_rule.rule[:64],
                  form=str((req.view_args or {}).get("slug", ""))[:64],
                  referrer=_referrer_host(environ.get("HTTP_REFERER"), req)[:253],
                  user_agent=environ.get("HTTP_USER_AGENT", ""),
                  address=req.remote_addr or "",
                  language=lang if lang in LANGUAGES else "other",
                  outcome=outcome if outcome in OUTCOMES else "other")


__all__ = ["COUNTED", "EXTENSION", "VisitCounter", "init_app", "mark"]
