"""What every table module builds on: the declarative base and the column types.

:class:`Base` carries the constraint naming convention; :class:`UTCDateTime`
and :data:`BigID` are the column types every table uses. The table modules
(:mod:`intake.db.models`, :mod:`intake.db.mail_models`,
:mod:`intake.db.staff_models`) import from here, and
:mod:`intake.db.metadata` imports all of them so every table is in
``Base.metadata``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Any) -> Any:
        """On SQLite, :meth:`process_bind_param` and SQLite's DATETIME text format in one
        step, by ``isoformat`` (the same text: a test compares the two); every submission
        binds half a dozen of them. Elsewhere, and for any other storage format, as
        SQLAlchemy chains them."""
        if dialect.name != "sqlite" or getattr(
                self.impl.dialect_impl(dialect), "_storage_format", None) != _SQLITE_DATETIME:
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process


# SQLAlchemy's SQLite DATETIME storage format (the default): what UTCDateTime writes.
_SQLITE_DATETIME = ("%(year)04d-%(month)02d-%(day)02d "
                    "%(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d")


# BIGINT on PostgreSQL, INTEGER on SQLite (so it stays the rowid alias).
BigID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
