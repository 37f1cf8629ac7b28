"""The database schema as the edges see it: the revision this code's migrations end at.

``intake db upgrade`` reports it; the migrations themselves (and applying
them) belong to :mod:`intake.db.migrate`, which only services and the
runtime import.
"""

from __future__ import annotations

from intake.db.migrate import head_revision

__all__ = ["head_revision"]
