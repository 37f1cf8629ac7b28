"""The roles a staff account can have; admins must use a second factor (TOTP)."""

from __future__ import annotations

ROLES = ("agent", "agency_admin", "records_officer", "system_admin", "operator")
# Live Help (issue 30): who may take chats for their agency.
CHAT_ROLES = ("operator", "agency_admin")
ADMIN_ROLES = ("agency_admin", "system_admin")
