"""What the work queue holds, as the job runner and the operators ask it.

The rows themselves and their life (enqueue, claim, complete, fail, resend)
are :mod:`intake.services.work`; here are the reads the runner's drain loop,
``intake jobs status`` and ``/healthz`` make, and the names the runner binds
to (the session factory and its after-commit hook key, the row and its
states), so that :mod:`intake.jobs` needs nothing of :mod:`intake.db`.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.db import AFTER_COMMIT, Database
from intake.db.models import WorkItem, WorkState, utcnow

__all__ = [
    "AFTER_COMMIT", "Database", "WorkItem", "WorkState", "counts_by_state", "due_item_ids",
    "unfinished_count",
]


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
