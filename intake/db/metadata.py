"""Every table of the schema in one ``MetaData``: what Alembic and the schema test compare.

Each area's tables live in their own module; importing them all here puts
every table in ``Base.metadata`` without the table modules importing each
other; it also registers the Alembic comparator that hides the search objects
(:func:`intake.db.staff_models.register_search_filter`).
"""

from __future__ import annotations

from intake.db import (  # noqa: F401 - for their tables
    automail_models,
    chat_models,
    copy_models,
    delivery_models,
    edge_models,
    mail_models,
    models,
    ops_models,
    publication_models,
    retention_models,
    staff_models,
    stats_models,
)
from intake.db.base import Base

staff_models.register_search_filter()

metadata = Base.metadata

__all__ = ["metadata"]
