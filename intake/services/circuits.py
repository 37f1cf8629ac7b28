"""Circuit breakers per destination, in the database so that every worker shares them.

A destination is an SMTP server (``smtp://host:port``) or a webhook origin
(``https://host:443``). The gate asks :func:`admit` before each send and
reports :func:`succeeded` after it; the job machinery reports each failure to
reach it with :func:`failed` (in the transaction that records the item's
failure, since the send's own transaction is rolled back):

- closed: sends go out; each failure in a row moves the destination's next
  try further away (exponential backoff with jitter, capped), and the failing
  item waits until then;
- open, after ``INTAKE_CIRCUIT_FAILURES`` failures in a row: nothing is sent
  to it until ``retry_at`` (the cool-down, doubling with each failed probe up
  to ``INTAKE_RETRY_CAP``); items that come due meanwhile wait without being
  tried (:class:`~intake.core.failures.DestinationPaused`);
- half-open, once ``retry_at`` has passed: the first worker to ask takes the
  row lock (``FOR UPDATE SKIP LOCKED``; SQLite's single writer does the same)
  and sends one probe; the others wait. The probe's success closes the circuit
  in its own transaction; its failure (rolled back, then reported) opens it
  again for a longer cool-down. A worker that dies mid-probe releases the lock
  with its connection: no probe is stuck.

The same policy is what GOV.UK Notify's delivery does in effect: keep trying
a provider that is down, with backoff, for up to 72 hours, then report a
temporary failure; never give up because of a count of tries.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from intake.core.failures import DeliveryFailure, DestinationPaused
from intake.db.delivery_models import CircuitState, DeliveryCircuit
from intake.db.models import utcnow
from intake.settings import Settings

__all__ = ["CircuitPolicy", "CircuitView", "admit", "circuits", "failed", "read_circuits",
           "succeeded"]

_CIRCUITS = cast(Table, DeliveryCircuit.__table__)


@dataclass(frozen=True)
class CircuitPolicy:
    """How long to wait: the backoff below the threshold, the cool-down above it."""

    failures: int = 5
    retry_base_seconds: float = 5.0
    cooldown_seconds: float = 30.0
    cap_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CircuitPolicy:
        return cls(failures=settings.circuit_failures,
                   retry_base_seconds=settings.retry_base_seconds,
                   cooldown_seconds=settings.circuit_cooldown_seconds,
                   cap_seconds=settings.retry_cap_seconds)

    def backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` in a row: exponential, capped, full jitter."""
        ceiling = min(self.cap_seconds, self.retry_base_seconds * 2 ** max(0, failures - 1))
        return random.uniform(0, ceiling)

    def cooldown(self, failures: int) -> float:
        """Seconds an open circuit stays shut: doubling per failed probe, capped, with
        "equal jitter" (half fixed, half random) so the probes of many hosts spread."""
        full = min(self.cap_seconds,
                   self.cooldown_seconds * 2 ** max(0, failures - self.failures))
        return full / 2 + random.uniform(0, full / 2)


@dataclass(frozen=True)
class CircuitView:
    """A destination's circuit as operators see it (``intake jobs status``)."""

    destination: str
    state: str
    failures: int
    failing_since: datetime | None
    retry_at: datetime | None
    last_error: str | None


_UNREAD: Any = object()
_ADMIT_COLUMNS = (_CIRCUITS.c.destination, _CIRCUITS.c.state, _CIRCUITS.c.retry_at,
                  _CIRCUITS.c.failing_since, _CIRCUITS.c.last_error, _CIRCUITS.c.failures)
_ADMIT_ROW = select(*_ADMIT_COLUMNS).where(_CIRCUITS.c.destination == bindparam("d"))
_ADMIT_ROWS = select(*_ADMIT_COLUMNS).where(
    _CIRCUITS.c.destination.in_(bindparam("ds", expanding=True)))


def read_circuits(session: Session, destinations: Collection[str]) -> dict[str, Any]:
    """The circuit rows of ``destinations`` in one query, as :func:`admit` reads them
    (None for a destination without a row: never failed), for its ``known=``."""
    found: dict[str, Any] = dict.fromkeys(destinations)
    if found:
        for row in session.execute(_ADMIT_ROWS, {"ds": list(found)}):
            found[row.destination] = row
    return found


def admit(session: Session, destination: str, policy: CircuitPolicy,
          now: datetime | None = None, *, known: Any = _UNREAD) -> bool:
    """Before sending to ``destination``, in the send's transaction.

    Returns if it may be tried: its circuit is closed, or open past its
    cool-down and this transaction now holds the probe (the row lock, until it
    commits or rolls back). The value says whether a success must be reported
    (:func:`succeeded`): False when the circuit was closed with no failures
    counted, the usual case, where there is nothing to reset. (A failure another
    worker counts meanwhile is then reset by the next success that reports.)

    Raises:
        DestinationPaused: the circuit is open (until its ``retry_at``), or
            another worker is probing it.
    """
    if known is not _UNREAD and (known is None or (
            known.state == CircuitState.CLOSED and int(known.failures) == 0)):
        # ``known``: the row as :func:`read_circuits` read it shortly before. Only its
        # usual answer (closed, nothing to reset) is taken from it; any other state is
        # read again below, as it may have moved.
        return False
    now = now or utcnow()
    row = session.execute(_ADMIT_ROW, {"d": destination}).one_or_none()
    if row is None:
        return False
    if row.state != CircuitState.OPEN:
        return row.state != CircuitState.CLOSED or int(row.failures) > 0
    if row.retry_at is not None and row.retry_at > now:
        raise DestinationPaused(destination, row.retry_at, _paused(destination, row))
    probe = session.execute(
        select(_CIRCUITS.c.destination)
        .where(_CIRCUITS.c.destination == destination, _CIRCUITS.c.state == CircuitState.OPEN)
        .with_for_update(skip_locked=True)).one_or_none()
    if probe is None:  # another worker holds the probe
        wait = policy.cooldown_seconds / 2 + random.uniform(0, policy.cooldown_seconds / 2)
        raise DestinationPaused(destination, now + timedelta(seconds=wait),
                                _paused(destination, row))
    return True


def succeeded(session: Session, destination: str, now: datetime | None = None) -> None:
    """After a send went through, in its transaction: the circuit closes (no write when
    it was closed without failures, the usual case)."""
    session.execute(
        update(_CIRCUITS)
        .where(_CIRCUITS.c.destination == destination,
               or_(_CIRCUITS.c.failures > 0, _CIRCUITS.c.state != CircuitState.CLOSED))
        .values(state=CircuitState.CLOSED, failures=0, failing_since=None, retry_at=None,
                last_error=None, updated_at=now or utcnow()))


def failed(session: Session, destination: str, error: DeliveryFailure, policy: CircuitPolicy,
           now: datetime | None = None) -> tuple[datetime, datetime]:
    """Count a failure to reach ``destination``; open its circuit at the threshold.

    Returns when the failed item is due again (the destination's backoff, or the
    end of its cool-down) and since when the destination has been failing.
    """
    now = now or utcnow()
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(_CIRCUITS).values(
        destination=destination, state=CircuitState.CLOSED, failures=0, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["destination"]))
    row = session.execute(select(_CIRCUITS.c.failures, _CIRCUITS.c.failing_since)
                          .where(_CIRCUITS.c.destination == destination)
                          .with_for_update()).one()
    failures = int(row.failures) + 1
    since = row.failing_since or now
    values: dict[str, Any] = {"failures": failures, "failing_since": since,
                              "last_error": error.reason[:500], "updated_at": now}
    if failures >= policy.failures:
        due = now + timedelta(seconds=policy.cooldown(failures))
        values.update(state=CircuitState.OPEN, retry_at=due)
    else:
        due = now + timedelta(seconds=policy.backoff(failures))
    session.execute(update(_CIRCUITS).where(_CIRCUITS.c.destination == destination)
                    .values(**values))
    return due, since


def circuits(session: Session) -> list[CircuitView]:
    """Every destination that has failed and not yet recovered, worst first."""
    rows = session.execute(select(_CIRCUITS).where(_CIRCUITS.c.failures > 0)
                           .order_by(_CIRCUITS.c.failures.desc(), _CIRCUITS.c.destination))
    return [CircuitView(r.destination, r.state, r.failures, r.failing_since, r.retry_at,
                        r.last_error) for r in rows]


def _paused(destination: str, row: Any) -> str:
    since = f" since {row.failing_since:%Y-%m-%d %H:%M} UTC" if row.failing_since else ""
    last = f" (last: {row.last_error})" if row.last_error else ""
    return f"{destination} could not be reached{since}; deliveries to it wait{last}"
