"""Security headers on every response.

Staff and public pages load nothing from third parties: CSP allows only
'self'. Pages that must be framed by an agency site (``/embed/<slug>``) set
their own ``frame-ancestors``; everything else refuses framing.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response
from flask.sessions import SecureCookieSessionInterface

DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# Set on every response that has not set its own (an embed page sets its frame-ancestors).
_DEFAULT_HEADERS = tuple((name.lower(), name, value) for name, value in (
    ("Content-Security-Policy", DEFAULT_CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
))


class SigningOnceSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signer built once per secret key.

    Flask builds it again on every request, the public form posts included,
    which never use the session (it holds the staff pages' CSRF token).
    """

    def __init__(self) -> None:
        self._signers: dict[tuple[Any, ...], Any] = {}

    def get_signing_serializer(self, app: Flask) -> Any:
        key = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        signer = self._signers.get(key)
        if signer is None:
            signer = super().get_signing_serializer(app)
            if signer is not None:
                self._signers = {key: signer}  # one key at a time: a changed key replaces it
        return signer


def init_app(app: Flask) -> None:
    app.session_interface = SigningOnceSessions()

    @app.after_request
    def _headers(response: Response) -> Response:
        # What setdefault would do for each, with one look at the headers already set.
        headers = response.headers
        present = {name.lower() for name in headers.keys()}
        for lowered, name, value in _DEFAULT_HEADERS:
            if lowered not in present:
                headers.add(name, value)
        return response
