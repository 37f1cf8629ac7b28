"""intake.services.work: the reads the job runner's drain loop and the operators make."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from intake.db import Database
from intake.db.models import WorkItem, WorkState, utcnow
from intake.services import work as workitems
from intake.services.work import counts_by_state, due_item_ids, unfinished_count


def _item(db: Database, kind: str, key: str, *, state: WorkState = WorkState.PENDING,
          due_in: timedelta = timedelta(0)) -> int:
    with db.session() as s:
        item_id = workitems.enqueue(s, kind, dedupe_key=key)
        s.execute(update(WorkItem).where(WorkItem.id == item_id).values(
            state=state, next_attempt_at=utcnow() + due_in))
    return item_id


class TestDueItemIds:
    def test_only_pending_due_items_of_the_kinds_asked_oldest_first(
            self, sqlite_url: str) -> None:
        db = Database(sqlite_url)
        try:
            first = _item(db, "route", "a", due_in=timedelta(seconds=-5))
            second = _item(db, "route", "b", due_in=timedelta(seconds=-1))
            _item(db, "route", "later", due_in=timedelta(hours=1))
            _item(db, "route", "running", state=WorkState.RUNNING)
            _item(db, "deliver", "other kind")
            with db.session() as s:
                assert due_item_ids(s, ("route",), limit=10) == [first, second]
                assert due_item_ids(s, ("route",), limit=1) == [first]
        finally:
            db.dispose()


class TestUnfinishedCount:
    def test_counts_pending_due_or_not_and_running_but_not_done_or_dead(
            self, sqlite_url: str) -> None:
        db = Database(sqlite_url)
        try:
            _item(db, "route", "due")
            _item(db, "route", "later", due_in=timedelta(hours=1))
            _item(db, "route", "running", state=WorkState.RUNNING)
            _item(db, "route", "done", state=WorkState.DONE)
            _item(db, "route", "dead", state=WorkState.DEAD)
            _item(db, "deliver", "other kind")
            with db.session() as s:
                assert unfinished_count(s, ("route",)) == 3
                assert unfinished_count(s, ("acknowledge",)) == 0
        finally:
            db.dispose()


class TestCountsByState:
    def test_every_state_is_present_with_zero_where_none(self, db_url: str) -> None:
        db = Database(db_url)
        try:
            _item(db, "route", "one")
            _item(db, "route", "two")
            _item(db, "deliver", "three", state=WorkState.DEAD)
            with db.session() as s:
                counts = counts_by_state(s)
            assert counts == {state.value: 0 for state in WorkState} | {
                WorkState.PENDING.value: 2, WorkState.DEAD.value: 1}
        finally:
            db.dispose()
