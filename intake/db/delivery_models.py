"""Tables of delivery: the state of each destination's circuit breaker.

- ``delivery_circuits``: one row per destination that has failed (an SMTP
  server ``smtp://host:port``, a webhook origin ``https://host:443``): how many
  times in a row it could not be reached, since when, and until when it is
  paused. Every worker process and host reads and writes the same rows, so a
  server that is down is paused for all of them at once and probed by one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, UTCDateTime, utcnow


class CircuitState:
    CLOSED = "closed"  # deliveries go out
    OPEN = "open"      # deliveries wait until retry_at; then one probe is let through


class DeliveryCircuit(Base):
    """A destination's circuit breaker (see :mod:`intake.services.circuits`)."""

    __tablename__ = "delivery_circuits"

    destination: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default=CircuitState.CLOSED)
    # Failures to reach it in a row (reset by a success); opens the circuit at the threshold.
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The first failure of the current run of failures: "could not reach it since ...".
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While open: no attempt before this moment; then one probe at a time.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow,
                                                 onupdate=utcnow)
