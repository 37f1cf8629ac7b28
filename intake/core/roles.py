"""The roles a staff account can have; admins must use a second factor (TOTP)."""

from __future__ import annotations

ROLES = ("agent", "agency_admin", "records_officer", "system_admin")
ADMIN_ROLES = ("agency_admin", "system_admin")
