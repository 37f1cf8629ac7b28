"""Work items: durable rows that say what background work is still to do.

The database is the source of truth and a broker message is only a trigger:

- :func:`enqueue_many` inserts the rows in the caller's transaction; the
  message is sent by an ``after_commit`` hook (see :mod:`intake.jobs.system`),
  so no message ever names a row that was rolled back;
- :func:`claim` takes a row with one atomic UPDATE, so two workers that get
  the same message (a re-send, a redelivery) never both run it;
- the handler's effects and :func:`complete` commit in one transaction, and
  :func:`complete` checks the claim is still ours, so an effect is recorded
  exactly once even if a worker stalls past its lease and another takes over;
- :func:`stale_items` finds rows whose message was lost, for the sweeper.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from intake.core.failures import DestinationPaused, PermanentError, TransientError
from intake.db import AFTER_COMMIT, Database
from intake.db.inserts import InsertBatch, PreparedInsert
from intake.db.models import WorkItem, WorkState, utcnow
from intake.services import circuits
from intake.services.circuits import CircuitPolicy
from intake.settings import Settings

__all__ = [
    # What the job runner (intake.jobs) binds to: the session factory and its after-commit
    # hook's key, the row and its states (intake.jobs imports nothing of intake.db).
    "AFTER_COMMIT", "Database", "WorkItem", "WorkState",
    "PENDING_SENDS", "backoff_seconds", "claim", "claim_many", "claim_together", "complete",
    "complete_many", "release_many",
    "counts_by_state", "due_item_ids", "enqueue", "enqueue_many", "pending_sends",
    "RetryPolicy", "dead_letters", "record_failure", "retry_dead", "stale_items",
    "unfinished_count",
]

# Session.info key listing work-item ids to send once the transaction commits.
PENDING_SENDS = "intake.pending_sends"


def enqueue(
    session: Session,
    kind: str,
    *,
    dedupe_key: str,
    entry_id: int | None = None,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> int:
    """Create a work item (:func:`enqueue_many` of one); its id, or the id of the item
    that already has this dedupe key."""
    return enqueue_many(session, [(kind, dedupe_key, entry_id, payload)],
                        not_before=not_before)[0][0]


def enqueue_many(session: Session,
                 items: Sequence[tuple[str, str, int | None, Mapping[str, Any] | None]], *,
                 not_before: datetime | None = None,
                 batch: InsertBatch | None = None) -> list[tuple[int, bool]]:
    """Work items ``(kind, dedupe_key, entry_id, payload)``: for each, its id and whether
    it is new. The one way work is added.

    One ``INSERT ... ON CONFLICT DO NOTHING``, no ORM object, no flush: an item
    whose dedupe key is taken (already, or earlier in ``items``) is left as it is
    and its id returned. A message is sent once the transaction commits only for
    the items created here (:func:`pending_sends`).

    With ``batch`` the INSERT joins it (see :class:`InsertBatch`; the caller runs
    it in this transaction) and returns nothing: only for items that cannot exist
    yet, such as the "route" item of an entry created in this transaction (a
    taken dedupe key fails the batch).
    """
    if not items:
        return []
    now = utcnow()
    due = not_before or now
    rows = [_item_row(kind, key, entry_id, now=now, due=due, payload=dict(payload or {}))
            for kind, key, entry_id, payload in items]
    sends = pending_sends(session)
    if batch is not None:
        def inserted(returned: list[tuple[Any, ...]]) -> None:
            sends.extend((int(item_id), due) for item_id, _ in returned)

        batch.add(WORK_ITEMS_INSERT, rows, then=inserted)
        return []
    conn = session.connection()
    created = {str(key): int(item_id)
               for item_id, key in _INSERT_WORK_ITEMS_OR_NOTHING.run(conn, rows)}
    ids = dict(created)
    taken = sorted({key for _, key, _, _ in items if key not in ids})
    if taken:
        ids.update((str(key), int(item_id))
                   for item_id, key in conn.execute(_IDS_BY_DEDUPE_KEYS, {"keys": taken}))
    result = []
    for _, key, _, _ in items:
        new = created.pop(key, None) is not None
        if new:
            sends.append((ids[key], due))
        result.append((ids[key], new))
    return result


def pending_sends(session: Session) -> list[tuple[int, datetime]]:
    """The messages (item id, due) the job system sends once ``session`` commits."""
    sends: list[tuple[int, datetime]] = session.info.setdefault(PENDING_SENDS, [])
    return sends


def _item_row(kind: str, dedupe_key: str, entry_id: int | None, *, now: datetime,
              due: datetime, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": kind, "entry_id": entry_id, "dedupe_key": dedupe_key,
            "state": WorkState.PENDING, "attempts": 0, "resends": 0, "next_attempt_at": due,
            "enqueued_at": max(now, due), "payload": payload or {}, "created_at": now,
            "updated_at": now}


_WORK_ITEMS = cast(Table, WorkItem.__table__)
_WORK_ITEM_COLUMNS = ("kind", "entry_id", "dedupe_key", "state", "attempts", "resends",
                      "next_attempt_at", "enqueued_at", "payload", "created_at", "updated_at")
WORK_ITEMS_INSERT = PreparedInsert(_WORK_ITEMS, _WORK_ITEM_COLUMNS,
                                   returning=("id", "dedupe_key"))
_INSERT_WORK_ITEMS_OR_NOTHING = PreparedInsert(_WORK_ITEMS, _WORK_ITEM_COLUMNS,
                                               returning=("id", "dedupe_key"),
                                               on_conflict_nothing=("dedupe_key",))
_IDS_BY_DEDUPE_KEYS = select(_WORK_ITEMS.c.id, _WORK_ITEMS.c.dedupe_key).where(
    _WORK_ITEMS.c.dedupe_key.in_(bindparam("keys", expanding=True)))


def claim(session: Session, item_id: int, worker: str, lease_seconds: float) -> WorkItem | None:
    """Atomically take a due item for ``worker``; None if it is not ours to run."""
    taken = claim_many(session, [item_id], worker, lease_seconds)
    return taken[0] if taken else None


def claim_many(session: Session, item_ids: Sequence[int], worker: str,
               lease_seconds: float) -> list[WorkItem]:
    """Atomically take those of ``item_ids`` that are due (one UPDATE), in id order.

    Due means pending and past its next attempt, or running with an expired
    lease (its worker died); anything else is not ours to run.
    """
    now = utcnow()
    # One statement: the UPDATE returns the claimed rows as loaded objects.
    taken = session.scalars(
        update(WorkItem)
        .where(
            WorkItem.id.in_(list(item_ids)),
            or_(
                and_(WorkItem.state == WorkState.PENDING, WorkItem.next_attempt_at <= now),
                and_(WorkItem.state == WorkState.RUNNING, WorkItem.locked_until < now),
            ),
        )
        .values(
            state=WorkState.RUNNING,
            attempts=WorkItem.attempts + 1,
            locked_until=now + timedelta(seconds=lease_seconds),
            claimed_by=worker,
            updated_at=now,
        )
        .returning(WorkItem),
        execution_options={"synchronize_session": False, "populate_existing": True},
    ).all()
    return sorted(taken, key=lambda item: item.id)


def claim_together(session: Session, item_id: int, worker: str, lease_seconds: float, *,
                   kinds: Collection[str], limit: int) -> list[WorkItem]:
    """Take ``item_id`` if it is due and, only then and only if its kind is one of
    ``kinds``, up to ``limit - 1`` other due items of its kind with it, those due the
    longest first (so a backlog of retries cannot starve items not yet tried). The
    claimed rows in id order (``item_id`` among them), or none.

    Two UPDATEs, each built once: the item by its key (an item another worker holds,
    or that is done, costs this one cheap statement), then the others. On PostgreSQL
    the others are picked ``FOR UPDATE SKIP LOCKED``: two workers claiming at the same
    moment take different items instead of waiting for each other.
    """
    now = utcnow()
    values = {"now": now, "until": now + timedelta(seconds=lease_seconds), "claimer": worker}
    options = {"synchronize_session": False, "populate_existing": True}
    first = session.scalars(_CLAIM_ONE, {**values, "item": item_id},
                            execution_options=options).all()
    if not first or first[0].kind not in kinds or limit <= 1:
        return list(first)
    others = session.scalars(_CLAIM_DUE_OF_KIND,
                             {**values, "of_kind": first[0].kind, "n": limit - 1},
                             execution_options=options).all()
    return sorted([*first, *others], key=lambda item: item.id)


def _due(rows: Any) -> Any:
    """Due to run at :now: pending and past its next attempt, or running with an expired
    lease (its worker died)."""
    now: Any = bindparam("now")
    return or_(and_(rows.state == WorkState.PENDING, rows.next_attempt_at <= now),
               and_(rows.state == WorkState.RUNNING, rows.locked_until < now))


_CLAIMED_VALUES = {"state": WorkState.RUNNING, "attempts": WorkItem.attempts + 1,
                   "locked_until": bindparam("until"), "claimed_by": bindparam("claimer"),
                   "updated_at": bindparam("now")}
_CLAIM_ONE = (update(WorkItem).where(WorkItem.id == bindparam("item"), _due(WorkItem))
              .values(**_CLAIMED_VALUES).returning(WorkItem))
_PICKED = aliased(WorkItem)
# Pending ones only (an expired lease is found by the sweeper, whose message names it),
# in the order of ix_work_items_state_next_attempt.
_CLAIM_DUE_OF_KIND = (
    update(WorkItem)
    .where(WorkItem.id.in_(
        select(_PICKED.id)
        .where(_PICKED.state == WorkState.PENDING, _PICKED.next_attempt_at <= bindparam("now"),
               _PICKED.kind == bindparam("of_kind"))
        .order_by(_PICKED.next_attempt_at, _PICKED.id)
        .limit(bindparam("n"))
        .with_for_update(skip_locked=True)
        .scalar_subquery()),
        WorkItem.state == WorkState.PENDING)
    .values(**_CLAIMED_VALUES).returning(WorkItem))


def release_many(session: Session, item_ids: Sequence[int], worker: str) -> list[int]:
    """Give back items ``worker`` claimed and did not start (their attempt not used): due
    again now, their messages sent once the transaction commits. The ids released."""
    if not item_ids:
        return []
    now = utcnow()
    released = [int(i) for i in session.connection().execute(
        update(_WORK_ITEMS)
        .where(_WORK_ITEMS.c.id.in_(list(item_ids)),
               _WORK_ITEMS.c.state == WorkState.RUNNING,
               _WORK_ITEMS.c.claimed_by == worker)
        .values(state=WorkState.PENDING, attempts=_WORK_ITEMS.c.attempts - 1,
                locked_until=None, claimed_by=None, next_attempt_at=now, enqueued_at=now,
                updated_at=now)
        .returning(_WORK_ITEMS.c.id)).scalars()]
    pending_sends(session).extend((item_id, now) for item_id in released)
    return released


def complete(session: Session, item: WorkItem, worker: str) -> bool:
    """Mark done, only if our claim still holds; False means roll the work back."""
    return complete_many(session, [item.id], worker)


def complete_many(session: Session, item_ids: Sequence[int], worker: str) -> bool:
    """Mark all done in one UPDATE; False unless every one of them was still ours."""
    marked = session.connection().execute(
        _COMPLETE, {"ids": list(item_ids), "claimer": worker, "now": utcnow()}).scalars().all()
    return len(marked) == len(item_ids)


# Built once (it runs once a work item).
_COMPLETE = (update(_WORK_ITEMS)
             .where(_WORK_ITEMS.c.id.in_(bindparam("ids", expanding=True)),
                    _WORK_ITEMS.c.state == WorkState.RUNNING,
                    _WORK_ITEMS.c.claimed_by == bindparam("claimer"))
             .values(state=WorkState.DONE, done_at=bindparam("now"), updated_at=bindparam("now"),
                     locked_until=None, last_error=None)
             .returning(_WORK_ITEMS.c.id))


def backoff_seconds(attempts: int, base: float, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's advice)."""
    ceiling = min(cap, base * (2 ** max(0, attempts - 1)))
    return base + random.uniform(0, ceiling)


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed item is tried again, and when it becomes a dead letter.

    - :class:`~intake.core.failures.PermanentError` (SMTP 5xx, a refusing
      webhook): a dead letter at once, with the reason in plain words;
    - :class:`~intake.core.failures.TransientError` (destination down, SMTP 4xx,
      HTTP 408/429/5xx, timeouts, no SMTP server configured): the attempt is
      given back (``deferrals`` counts it instead); the item waits for its
      destination's backoff or circuit (:mod:`intake.services.circuits`), or for its
      own backoff when the answer concerned this message only; a dead letter only
      once it is older than ``max_age_seconds``;
    - anything else (a fault of intake's own, a database error): retried with
      backoff until it has used ``max_attempts`` attempts.
    """

    max_attempts: int = 8
    retry_base_seconds: float = 5.0
    retry_cap_seconds: float = 3600.0
    max_age_seconds: float = 3 * 24 * 3600.0
    circuit: CircuitPolicy = field(default_factory=CircuitPolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(max_attempts=settings.max_attempts,
                   retry_base_seconds=settings.retry_base_seconds,
                   retry_cap_seconds=settings.retry_cap_seconds,
                   max_age_seconds=settings.delivery_max_age_seconds,
                   circuit=CircuitPolicy.from_settings(settings))


def record_failure(session: Session, item_id: int, worker: str, error: BaseException,
                   policy: RetryPolicy) -> WorkItem | None:
    """After a failed attempt: schedule a retry or move to the dead-letter state.

    ``last_error`` says why in plain words (the failure's ``reason``); never the
    payload or a body.
    """
    item = session.get(WorkItem, item_id, populate_existing=True)
    if item is None or item.state != WorkState.RUNNING or item.claimed_by != worker:
        return None
    now = utcnow()
    item.locked_until = None
    item.updated_at = now
    due: datetime | None = None
    if isinstance(error, PermanentError):
        item.last_error = error.reason[:1000]
    elif isinstance(error, TransientError):
        item.attempts = max(0, item.attempts - 1)  # a transient failure uses no attempt
        item.deferrals += 1
        item.deferred_since = item.deferred_since or now
        due = _transient_due(session, item, error, policy, now)
        age = now - item.deferred_since
        if age.total_seconds() >= policy.max_age_seconds:
            item.last_error = (f"not delivered in {_duration(age)}, the age limit: "
                               f"{error.reason}")[:1000]
            due = None
        else:
            item.last_error = error.reason[:1000]
    else:
        item.last_error = f"{type(error).__name__}: {str(error)[:500]}"
        if item.attempts < policy.max_attempts:
            due = now + timedelta(seconds=backoff_seconds(
                item.attempts, policy.retry_base_seconds, policy.retry_cap_seconds))
        else:
            item.last_error = (f"failed {item.attempts} times (INTAKE_MAX_ATTEMPTS): "
                               f"{item.last_error}")[:1000]
    if due is None:
        item.state = WorkState.DEAD
    else:
        item.state = WorkState.PENDING
        item.next_attempt_at = due
        item.enqueued_at = due
        item.resends, item.resend_after = 0, None
        session.info.setdefault(PENDING_SENDS, []).append((item.id, due))
    return item


def _transient_due(session: Session, item: WorkItem, error: TransientError,
                   policy: RetryPolicy, now: datetime) -> datetime:
    """When an item that failed transiently is due again."""
    if isinstance(error, DestinationPaused):
        # Not tried: wait for the cool-down to end (spread, so they don't all come at once).
        return max(error.retry_at, now) + timedelta(
            seconds=random.uniform(0, policy.retry_base_seconds))
    if error.unreachable and error.destination:
        due, _ = circuits.failed(session, error.destination, error, policy.circuit, now)
        return due
    # About this message only (e.g. SMTP 451 for one recipient): its own backoff.
    return now + timedelta(seconds=backoff_seconds(item.deferrals, policy.retry_base_seconds,
                                                   policy.retry_cap_seconds))


def _duration(age: timedelta) -> str:
    """An age in plain words: "3 days", "5 hours", "12 minutes", "40 seconds"."""
    seconds = int(age.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def stale_items(
    session: Session, redeliver_after_seconds: float, limit: int = 500
) -> Sequence[int]:
    """Ids of items whose broker message is presumed lost, marked as re-sent.

    Pending items whose expected run time passed more than
    ``redeliver_after_seconds`` ago (or, once re-sent, whose doubled wait
    ``resend_after`` passed), and running items whose lease expired (their
    worker died). Each re-send doubles the next wait (capped at 64 times), so
    a backlog that merely waits in the queue is not re-sent over and over.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=redeliver_after_seconds)
    items = session.scalars(
        select(WorkItem)
        .where(
            or_(
                and_(
                    WorkItem.state == WorkState.PENDING,
                    WorkItem.next_attempt_at <= now,
                    or_(
                        and_(WorkItem.resend_after.is_(None),
                             or_(WorkItem.enqueued_at.is_(None),
                                 WorkItem.enqueued_at < cutoff)),
                        WorkItem.resend_after < now,
                    ),
                ),
                and_(WorkItem.state == WorkState.RUNNING, WorkItem.locked_until < now),
            )
        )
        .order_by(WorkItem.id)
        .limit(limit)
    ).all()
    for item in items:
        item.resends += 1
        item.enqueued_at = now
        wait = redeliver_after_seconds * (2 ** min(item.resends, 6))
        item.resend_after = now + timedelta(seconds=wait)
    return [item.id for item in items]


def retry_dead(session: Session, item_ids: Sequence[int] | None = None) -> list[int]:
    """Put dead-letter items back in the queue (staff action or `intake jobs retry`)."""
    query = select(WorkItem).where(WorkItem.state == WorkState.DEAD)
    if item_ids is not None:
        query = query.where(WorkItem.id.in_(item_ids))
    revived = []
    now = utcnow()
    for item in session.scalars(query):
        item.state = WorkState.PENDING
        item.attempts = 0
        item.deferrals, item.deferred_since = 0, None
        item.next_attempt_at = now
        item.enqueued_at = now
        item.resends, item.resend_after = 0, None
        item.updated_at = now
        revived.append(item.id)
        session.info.setdefault(PENDING_SENDS, []).append((item.id, now))
    return revived


# -- what the queue holds, as the job runner and the operators ask it --------------------


def due_item_ids(session: Session, kinds: Collection[str], limit: int) -> list[int]:
    """Ids of pending items of ``kinds`` that are due now, oldest first, at most ``limit``."""
    return list(session.scalars(
        select(WorkItem.id)
        .where(WorkItem.kind.in_(kinds), WorkItem.state == WorkState.PENDING,
               WorkItem.next_attempt_at <= utcnow())
        .order_by(WorkItem.id).limit(limit)))


def unfinished_count(session: Session, kinds: Collection[str]) -> int:
    """How many items of ``kinds`` are still pending (due or not) or running."""
    return session.scalar(
        select(func.count()).select_from(WorkItem)
        .where(WorkItem.kind.in_(kinds),
               WorkItem.state.in_([WorkState.PENDING, WorkState.RUNNING]))) or 0


def counts_by_state(session: Session) -> dict[str, int]:
    """Work items per state, every state present (zero where none)."""
    rows = session.execute(
        select(WorkItem.state, func.count()).group_by(WorkItem.state)
    ).all()
    counts = {state.value: 0 for state in WorkState}
    counts.update({str(state): int(n) for state, n in rows})
    return counts


def dead_letters(session: Session, limit: int = 50) -> list[WorkItem]:
    """The latest dead-letter items (``intake jobs status``): their ``last_error`` says why."""
    return list(session.scalars(select(WorkItem).where(WorkItem.state == WorkState.DEAD)
                                .order_by(WorkItem.updated_at.desc(), WorkItem.id.desc())
                                .limit(limit)))
