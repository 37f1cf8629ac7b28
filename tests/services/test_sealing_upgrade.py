"""`intake db seal`: the personal data stored before sealing began is sealed once, in place."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Table, delete, select, text
from sqlalchemy.exc import DBAPIError

from intake.db import Database
from intake.db.append_only import guard_lifted
from intake.db.mail_models import QuarantinedMessage
from intake.db.models import (
    Attachment,
    Entry,
    EntryKey,
    Original,
    ThreadMessage,
)
from intake.services.mail_intake import open_quarantined
from intake.services.records import (
    NewSubmission,
    OriginalUnavailable,
    open_attachment,
    open_original,
    open_thread_message,
    record_submissions,
)
from tests.conftest import ORIGINALS_KEY, REPO, intake_command, subprocess_env

# More attachments than one batch (200) holds, so the pass takes several transactions.
OLD_ATTACHMENTS = 205
TABLES: dict[str, Any] = {"originals": Original, "thread_messages": ThreadMessage,
                          "attachments": Attachment, "quarantined_messages": QuarantinedMessage}


def _old(n: int, what: str) -> bytes:
    """Plaintext as a release before sealing stored it, with a P6 value to look for."""
    return f"From: citizen{n}@example.org\r\n\r\n{what} {n}: my SSN is 123-45-{n:04d}".encode()


def _store_plaintext_rows(db: Database) -> dict[str, dict[int, bytes]]:
    """Rows as written before sealing began (no entry keys, bytes as received), and one
    entry recorded since; their plaintext by table and id."""
    plain: dict[str, dict[int, bytes]] = {table: {} for table in TABLES}
    with db.session() as s:
        record_submissions(s, [NewSubmission(channel="web", kind="contact", raw=b'{"new": 1}',
                                           content_type="application/json")],
                                               record_prefix="EX", originals_key=ORIGINALS_KEY)[0]
        entries = [Entry(record_number=f"EX-2025-{n:06d}", channel="email", kind="contact",
                         idempotency_key=f"old-{n}") for n in range(3)]
        s.add_all(entries)
        s.flush()
        for n, entry in enumerate(entries):
            raw = _old(n, "original")
            row = Original(entry_id=entry.id, content_type="message/rfc822", raw=raw,
                           sha256=hashlib.sha256(raw).hexdigest(), size=len(raw),
                           received_at=entry.received_at)
            s.add(row)
            s.flush()
            plain["originals"][row.id] = raw
        reply = _old(0, "reply")
        message = ThreadMessage(entry_id=entries[0].id, direction="in", author_kind="submitter",
                                raw=reply, sha256=hashlib.sha256(reply).hexdigest(),
                                idempotency_key="old-reply")
        s.add(message)
        s.flush()
        plain["thread_messages"][message.id] = reply
        for n in range(OLD_ATTACHMENTS):
            content = _old(n, "attachment")
            attachment = Attachment(entry_id=entries[n % 3].id, filename=f"a{n}.txt",
                                    declared_type="text/plain", sniffed_type="text/plain",
                                    size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                                    content=content)
            s.add(attachment)
            s.flush()
            plain["attachments"][attachment.id] = content
        quarantined = _old(0, "quarantined")
        q = QuarantinedMessage(sha256=hashlib.sha256(quarantined).hexdigest(),
                               size=len(quarantined), raw=quarantined, error_class="ValueError")
        s.add(q)
        s.flush()
        plain["quarantined_messages"][q.id] = quarantined
    return plain


def _rows(conn: Connection) -> dict[str, dict[int, dict[str, Any]]]:
    """Every row of the four tables, by table and id."""
    return {name: {row["id"]: dict(row) for row in conn.execute(
        select(model.__table__)).mappings()} for name, model in TABLES.items()}


def _triggers(conn: Connection) -> list[tuple[Any, ...]]:
    """The database's triggers as it would re-create them."""
    if conn.dialect.name == "sqlite":
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
    else:
        query = ("SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                 "WHERE NOT tgisinternal ORDER BY tgname")
    return [tuple(row) for row in conn.execute(text(query))]


def _seal(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = subprocess_env(INTAKE_DATABASE_URL=url, INTAKE_INSTANCE_PATH=str(tmp_path / "i"))
    result = subprocess.run([*intake_command(), "db", "seal", *args], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def _assert_append_only(db: Database) -> None:
    for statement in ("UPDATE originals SET size = 0", "DELETE FROM originals",
                      "UPDATE thread_messages SET body = 'x'", "DELETE FROM attachments"):
        with pytest.raises(DBAPIError, match="append-only"), db.session() as s:
            s.execute(text(statement))


def test_db_seal_seals_what_was_stored_before_sealing_began(tmp_path: Path, db_url: str) -> None:
    db = Database(db_url)
    try:
        plain = _store_plaintext_rows(db)
        with db.engine.connect() as conn:
            before, triggers = _rows(conn), _triggers(conn)

        dry = _seal(tmp_path, db_url)
        assert "originals: 3 in plaintext" in dry.stdout
        assert "thread messages: 1 in plaintext" in dry.stdout
        assert f"attachments: {OLD_ATTACHMENTS} in plaintext" in dry.stdout
        assert "quarantined messages: 1 in plaintext" in dry.stdout
        with db.engine.connect() as conn:
            assert _rows(conn) == before  # a dry run changes nothing

        total = 3 + 1 + OLD_ATTACHMENTS + 1
        applied = _seal(tmp_path, db_url, "--apply")
        assert f"{total} row(s) sealed" in applied.stdout
        progress = [line for line in applied.stderr.replace("\r", "\n").splitlines()
                    if line.startswith("sealed ")]
        # One line per batch: originals, the reply, the attachments in two, the quarantined one.
        assert len(progress) == 5, applied.stderr
        assert progress[-1].startswith(f"sealed {total}/{total} rows")

        with db.engine.connect() as conn:
            after = _rows(conn)
            assert _triggers(conn) == triggers
            for table, by_id in after.items():
                data = "content" if table == "attachments" else "raw"
                for row_id, row in by_id.items():
                    old = before[table][row_id]
                    if row_id not in plain[table]:  # sealed already: left as it was
                        assert row == old
                        continue
                    assert b"123-45-" not in bytes(row[data])
                    changed = {"raw", "content", "wrapped_key"}
                    assert {k: v for k, v in row.items() if k not in changed} == \
                        {k: v for k, v in old.items() if k not in changed}
            for row_id, raw in plain["originals"].items():
                entry_id = after["originals"][row_id]["entry_id"]
                assert open_original(conn, entry_id, ORIGINALS_KEY) == raw
            for row_id, raw in plain["thread_messages"].items():
                assert open_thread_message(conn, row_id, ORIGINALS_KEY) == raw
            for row_id, content in plain["attachments"].items():
                entry_id = after["attachments"][row_id]["entry_id"]
                opened = open_attachment(conn, entry_id, row_id, ORIGINALS_KEY)
                assert opened is not None and opened.content == content
        with db.session() as s:
            for q in s.scalars(select(QuarantinedMessage)):
                assert q.wrapped_key is not None
                assert open_quarantined(q, ORIGINALS_KEY) == plain["quarantined_messages"][q.id]

        again = _seal(tmp_path, db_url, "--apply")
        assert "0 row(s) sealed" in again.stdout
        assert all(line.endswith(": 0 in plaintext")
                   for line in again.stdout.splitlines()[:4]), again.stdout
        _assert_append_only(db)

        # Sealed, the old entry's bytes go with its key (what retention relies on).
        old_entry = after["originals"][next(iter(plain["originals"]))]["entry_id"]
        with db.session() as s:
            s.execute(delete(EntryKey).where(EntryKey.entry_id == old_entry))
        with db.engine.connect() as conn, pytest.raises(OriginalUnavailable):
            open_original(conn, old_entry, ORIGINALS_KEY)
    finally:
        db.dispose()


def test_a_failed_batch_leaves_the_append_only_guard_in_place(db_url: str) -> None:
    """The guard is dropped and put back in the batch's transaction: rolled back, it stays."""
    db = Database(db_url)
    try:
        _store_plaintext_rows(db)
        with db.engine.connect() as conn:
            before, triggers = _rows(conn), _triggers(conn)
        originals: Table = Original.__table__  # type: ignore[assignment]
        with pytest.raises(RuntimeError), db.session() as s:
            conn = s.connection()
            with guard_lifted(conn, ("originals",)):
                conn.execute(originals.update().values(size=0))
                raise RuntimeError("interrupted")
        with db.engine.connect() as conn:
            assert _triggers(conn) == triggers
            assert _rows(conn) == before
        _assert_append_only(db)
    finally:
        db.dispose()
