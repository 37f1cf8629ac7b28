"""Tables of the web edge: the rate-limit counters every worker process shares.

- ``rate_limit_counters``: one row per (limit, client, window): the limit's key
  (which holds a keyed hash of the client address, never the address), the
  hits counted in the current fixed window and when that window ends (epoch
  seconds). Written only by :mod:`intake.services.ratelimits` with one atomic
  upsert per hit; rows whose window has ended are purged from time to time.
  Used when no Redis is configured (``INTAKE_RATE_LIMIT_URL=database``).
"""

from __future__ import annotations

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base


class RateLimitCounter(Base):
    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False)
    expires_at: Mapped[float] = mapped_column(Float, nullable=False)

    __table_args__ = (Index("ix_rate_limit_counters_expires_at", "expires_at"),)
