"""Live Help (issue 30): chats between the public and agency operators.

A chat lives in these tables while it runs; when it ends its transcript becomes an
entry on the ``chat`` channel through the one record store, and ``entry_id`` points at
it. A message's text is stored with what people are asked not to send (P6) replaced
by markers; its exact text is kept only sealed (``raw``, under the chat's own key,
``wrapped_key``) until the transcript's sealed original holds it, then both are
erased. No IP address and no User-Agent string is stored: only the browser family and
major version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from intake.db.base import Base, BigID, UTCDateTime, utcnow


class ChatSession(Base):
    __tablename__ = "chat_sessions"
    __table_args__ = (Index("ix_chat_sessions_agency_state", "agency_id", "state"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    # The public handle (random, URL-safe); the visitor's URL carries it signed.
    public_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # waiting, active, ended, left
    agency_id: Mapped[str] = mapped_column(String(64), nullable=False)
    topic: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    visitor_name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), nullable=False, default="en")
    browser: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    operator_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="RESTRICT"))
    operator_name: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Transfers (agency, reason, at), the exit-interview answers: no personal data.
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("entries.id", ondelete="RESTRICT"))
    # The transcript entry's status link token, sealed under the chat's key until shown.
    status_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)


class ChatMessage(Base):
    """One event of a chat, in order: its id is the stream's event id."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="RESTRICT"), nullable=False, index=True)
    author: Mapped[str] = mapped_column(String(16), nullable=False)  # visitor, operator, system
    author_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ChatAccess(Base):
    """A staff view of a running chat (P8); copied to the entry's access log at the end."""

    __tablename__ = "chat_access"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(
        ForeignKey("chat_sessions.id", ondelete="RESTRICT"), nullable=False, index=True)
    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="RESTRICT"), nullable=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ChatOperator(Base):
    """The name an operator shows visitors (never their e-mail address)."""

    __tablename__ = "chat_operators"

    staff_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="RESTRICT"), primary_key=True,
        autoincrement=False)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False)
