"""Migration 0019 on a database written before it: copies from the stored decisions, who
made each decision, and a search index that stems."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from intake.db import Database
from intake.db.migrate import alembic_config, upgrade


def test_0019_fills_copies_and_actors_and_stems_the_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade(url, "0016")
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            for n, (agency, body) in enumerate((("dot", "Two potholes on Route 9"),
                                                ("parks", "A fallen tree")), start=1):
                conn.execute(text(
                    "INSERT INTO entries (id, record_number, channel, kind, received_at, "
                    "subject, body, search_text, fields, status, idempotency_key, tags, "
                    "agency_id) VALUES (:n, :rn, 'web', 'contact', '2026-01-0' || :n || "
                    "' 08:00:00', '', :body, :body, '{}', 'new', :k, '[]', :agency)"),
                    {"n": n, "rn": f"EX-2026-00000{n}", "body": body, "k": f"k{n}",
                     "agency": agency})

            def decided(entry: int, at: str, route_to: str, cc: str, actor: str,
                        kind: str) -> None:
                conn.execute(text(
                    "INSERT INTO routing_decisions (entry_id, decided_at, route_to, cc, tags, "
                    "matched_rules, rules_sha256, trace) VALUES (:e, :at, :to, :cc, '[]', "
                    "'[]', 'x', '[]')"), {"e": entry, "at": at, "to": route_to, "cc": cc})
                conn.execute(text(
                    "INSERT INTO events (entry_id, kind, at, actor, detail) "
                    "VALUES (:e, :kind, :at, :actor, '{}')"),
                    {"e": entry, "kind": kind, "at": at, "actor": actor})

            # Entry 1: rules sent it to dot with a copy for parks and governor.
            decided(1, "2026-01-01 08:00:01.000000", "dot", '["parks", "governor"]', "rules",
                    "routed")
            # Entry 2: rules sent it to dot with a copy for parks; staff rerouted it to
            # parks keeping a copy for dot (the latest decision counts).
            decided(2, "2026-01-02 08:00:01.000000", "dot", '["parks"]', "rules", "routed")
            decided(2, "2026-01-02 09:00:00.000000", "parks", '["dot"]', "staff:7", "rerouted")
        upgrade(url)
        with db.engine.connect() as conn:
            copies = conn.execute(text(
                "SELECT entry_id, agency_id, received_at FROM entry_copies "
                "ORDER BY entry_id, agency_id")).all()
            assert [(c.entry_id, c.agency_id) for c in copies] == [
                (1, "governor"), (1, "parks"), (2, "dot")]
            assert str(copies[-1].received_at).startswith("2026-01-02 08:00:00")
            actors = conn.execute(text(
                "SELECT entry_id, actor FROM routing_decisions ORDER BY id")).all()
            assert [tuple(a) for a in actors] == [(1, "rules"), (2, "rules"), (2, "staff:7")]
            found = conn.execute(text(
                "SELECT rowid FROM entries_fts WHERE entries_fts MATCH '\"pothole\"'")).all()
            assert [tuple(f) for f in found] == [(1,)]
        # Down and up again: the decisions stay append-only throughout.
        command.downgrade(alembic_config(url), "0016")
        with pytest.raises(IntegrityError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text("UPDATE routing_decisions SET route_to = 'governor'"))
        upgrade(url)
        with pytest.raises(IntegrityError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text("UPDATE routing_decisions SET route_to = 'governor'"))
    finally:
        db.dispose()
