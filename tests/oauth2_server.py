"""A small OAuth2 authorization server on loopback, for the XOAUTH2 tests.

``OAuth2TestServer()`` listens on a free 127.0.0.1 port (a thread of the test
process) and offers:

- ``POST /token``: ``client_credentials`` and ``refresh_token`` grants, the client
  authenticated by ``client_id``/``client_secret`` in the body or HTTP Basic;
  refusals in RFC 6749 JSON (``invalid_client`` with an AADSTS-like description);
- ``POST /introspect`` (RFC 7662): ``{"active": true, "username": …}`` for a
  live token, ``{"active": false}`` otherwise (Dovecot's ``oauth2`` passdb asks it);
- controls for the test: :meth:`expire_all` (every token issued so far stops being
  active, though the client still believes it valid), :meth:`revoke_client`.

It also answers, in-process, :meth:`validate` for the aiosmtpd XOAUTH2 authenticator.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.conftest import SmtpSink


@dataclass
class Client:
    secret: str
    username: str  # the mailbox this client's tokens open
    revoked: bool = False
    refresh_tokens: set[str] = field(default_factory=set)


@dataclass
class Token:
    client_id: str
    username: str
    expires_at: float
    active: bool = True


class OAuth2TestServer:
    def __init__(self, lifetime: int = 3600) -> None:
        self.lifetime = lifetime
        self.clients: dict[str, Client] = {}
        self.tokens: dict[str, Token] = {}
        self.requests: list[dict[str, str]] = []  # token requests, secrets removed
        self.introspections = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in
                        parse_qs(self.rfile.read(length).decode()).items()}
                auth = self.headers.get("Authorization", "")
                if self.path == "/token":
                    status, body = server._token(form, auth)
                elif self.path == "/introspect":
                    status, body = server._introspect(form, auth)
                else:
                    status, body = 404, {"error": "not_found"}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_url = f"{self.url}/token"
        self.introspection_url = f"{self.url}/introspect"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # -- set-up and controls ----------------------------------------------------------

    def add_client(self, client_id: str, username: str, secret: str | None = None) -> str:
        secret = secret or "cs-" + secrets.token_urlsafe(24)
        with self.lock:
            self.clients[client_id] = Client(secret, username)
        return secret

    def add_refresh_token(self, client_id: str) -> str:
        token = "rt-" + secrets.token_urlsafe(24)
        with self.lock:
            self.clients[client_id].refresh_tokens.add(token)
        return token

    def expire_all(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.active = False

    def revoke_client(self, client_id: str) -> None:
        with self.lock:
            self.clients[client_id].revoked = True
            for token in self.tokens.values():
                if token.client_id == client_id:
                    token.active = False

    def issued(self, client_id: str | None = None) -> list[str]:
        with self.lock:
            return [t for t, v in self.tokens.items()
                    if client_id is None or v.client_id == client_id]

    def validate(self, username: str, token: str) -> bool:
        with self.lock:
            found = self.tokens.get(token)
            return bool(found and found.active and found.expires_at > time.time()
                        and found.username == username)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- endpoints ----------------------------------------------------------------------

    def _client(self, form: dict[str, str], auth: str) -> tuple[str, str]:
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return unquote(user), unquote(password)
        return form.get("client_id", ""), form.get("client_secret", "")

    def _token(self, form: dict[str, str], auth: str) -> tuple[int, dict[str, object]]:
        client_id, secret = self._client(form, auth)
        grant = form.get("grant_type", "")
        with self.lock:
            self.requests.append({"grant_type": grant, "client_id": client_id,
                                  "scope": form.get("scope", "")})
            client = self.clients.get(client_id)
            if client is None or not secrets.compare_digest(client.secret, secret):
                return 401, {"error": "invalid_client",
                             "error_description": "AADSTS7000215: Invalid client secret "
                                                  "provided. Ensure the secret being sent "
                                                  "is the client secret value."}
            if client.revoked:
                return 401, {"error": "invalid_client",
                             "error_description": "the client has been revoked"}
            if grant == "refresh_token":
                if form.get("refresh_token") not in client.refresh_tokens:
                    return 400, {"error": "invalid_grant",
                                 "error_description": "refresh token unknown or revoked"}
            elif grant != "client_credentials":
                return 400, {"error": "unsupported_grant_type"}
            token = "at-" + secrets.token_urlsafe(32)
            self.tokens[token] = Token(client_id, client.username,
                                       time.time() + self.lifetime)
        return 200, {"access_token": token, "token_type": "Bearer",
                     "expires_in": self.lifetime}

    def _introspect(self, form: dict[str, str], auth: str) -> tuple[int, dict[str, object]]:
        token = form.get("token", "")
        if not token and auth.startswith("Bearer "):
            token = auth[7:]
        with self.lock:
            self.introspections += 1
            found = self.tokens.get(token)
            if not found or not found.active or found.expires_at <= time.time():
                return 200, {"active": False}
            return 200, {"active": True, "username": found.username,
                         "client_id": found.client_id, "exp": int(found.expires_at)}


# -- an SMTP submission server that takes XOAUTH2 tokens of the server above -----------


class XOAuth2Sink(SmtpSink):
    """:class:`tests.conftest.SmtpSink` requiring AUTH XOAUTH2, validated by ``authority``.

    ``refusals`` counts the 535 answers; ``logins`` the accepted tokens' users.
    """

    def __init__(self, authority: OAuth2TestServer) -> None:
        super().__init__()
        self.authority = authority
        self.refusals = 0
        self.logins: list[str] = []

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:  # noqa: N802
        if len(args) < 2:  # no initial response: ask for it
            answer = await server.challenge_auth("", encode_to_b64=False)
            raw = answer if isinstance(answer, bytes) else b""
        else:
            raw = base64.b64decode(args[1])
        fields = dict(part.partition("=")[::2] for part in raw.decode().split("\x01") if part)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        if self.authority.validate(user, token):
            self.logins.append(user)
            return AuthResult(success=True, handled=False)
        self.refusals += 1
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any,  # noqa: N802
                          address: str, mail_options: list[str]) -> str:
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    def start(self) -> XOAuth2Sink:
        # AUTH without TLS (loopback); MAIL before AUTH is refused by handle_MAIL.
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                      auth_require_tls=False)
        self._controller.start()
        return self
