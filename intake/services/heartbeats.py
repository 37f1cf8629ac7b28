"""Worker heartbeats: each job-consuming process says, every few seconds, that it is alive.

One ``worker_heartbeats`` row per process (its identity: host name and process
id). ``/readyz`` counts the rows fresher than ``INTAKE_HEARTBEAT_STALE``
seconds; the row goes away when the process stops cleanly, and rows long dead
are purged by the next beat of any process.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select, update

from intake.db import Database
from intake.db.models import utcnow
from intake.db.ops_models import WorkerHeartbeat

# Rows this much older than the staleness limit are deleted (a process killed with -9).
PURGE_FACTOR = 10


def beat(db: Database, worker: str, role: str, stale_seconds: float) -> None:
    """Record that ``worker`` is alive now (the row is created on its first beat)."""
    now = utcnow()
    with db.session() as session:
        updated = session.execute(update(WorkerHeartbeat)
                                  .where(WorkerHeartbeat.worker == worker)
                                  .values(beat_at=now, role=role)
                                  .returning(WorkerHeartbeat.worker)).first()
        if updated is None:
            session.add(WorkerHeartbeat(worker=worker, role=role, started_at=now, beat_at=now))
        session.execute(delete(WorkerHeartbeat).where(
            WorkerHeartbeat.beat_at < now - timedelta(seconds=stale_seconds * PURGE_FACTOR)))


def remove(db: Database, worker: str) -> None:
    """The process stops cleanly: its row goes."""
    with db.session() as session:
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker == worker))


def live_workers(db: Database, stale_seconds: float) -> int:
    """How many worker processes beat within the last ``stale_seconds``."""
    since = utcnow() - timedelta(seconds=stale_seconds)
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(WorkerHeartbeat)
                                  .where(WorkerHeartbeat.beat_at >= since)) or 0)
