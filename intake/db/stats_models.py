"""Tables of the visit statistics (issue 29, promise P1): counters only.

- ``visit_counts``: how many requests a public page had on a day, per route
  template (``/status/<token>``, never a token), form, referrer host (never a
  URL), browser family, OS family, language and outcome (view, submission,
  invalid, other). Written in batches by :mod:`intake.services.visits`.
- ``visit_uniques``: unique visitors per day, route template and form, counted
  by a keyed hash of (address, user agent, day) whose key never leaves memory
  (or Redis, with a time-to-live); neither the hash nor its inputs are stored.

No address, user-agent string, token or query string is in either table.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import BigInteger, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base


class VisitCount(Base):
    __tablename__ = "visit_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    route: Mapped[str] = mapped_column(String(64), primary_key=True)
    form: Mapped[str] = mapped_column(String(64), primary_key=True)
    referrer: Mapped[str] = mapped_column(String(253), primary_key=True)
    browser: Mapped[str] = mapped_column(String(64), primary_key=True)
    os: Mapped[str] = mapped_column(String(64), primary_key=True)
    language: Mapped[str] = mapped_column(String(8), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    hits: Mapped[int] = mapped_column(BigInteger, nullable=False)


class VisitUnique(Base):
    __tablename__ = "visit_uniques"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    route: Mapped[str] = mapped_column(String(64), primary_key=True)
    form: Mapped[str] = mapped_column(String(64), primary_key=True)
    visitors: Mapped[int] = mapped_column(BigInteger, nullable=False)
