"""Tables of operations: the heartbeat of each worker process.

- ``worker_heartbeats``: one row per running job-consuming process (``intake
  worker``, or ``intake serve`` with its embedded worker), keyed by its identity
  (host name and process id), with when it started and when it last said it was
  alive. ``/readyz`` counts the rows fresher than ``INTAKE_HEARTBEAT_STALE``; a
  process removes its row when it stops cleanly. No personal data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, UTCDateTime


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    worker: Mapped[str] = mapped_column(String(255), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
