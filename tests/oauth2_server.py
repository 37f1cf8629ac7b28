"""A small OAuth2 authorization server on loopback, for the XOAUTH2 tests.

``OAuth2TestServer()`` listens on a free 127.0.0.1 port (a thread of the test
process) and offers:

- ``POST /token``: ``client_credentials`` and ``refresh_token`` grants, the client
  authenticated by ``client_id``/``client_secret`` in the body or HTTP Basic, or
  (a client registered with :meth:`add_certificate_client`) by a signed JWT client
  assertion (RFC 7523, ``private_key_jwt``) checked as Microsoft Entra does: the
  ``x5t`` thumbprint names the registered certificate, the RS256 signature verifies
  with it, ``aud`` is the token URL, ``iss`` = ``sub`` = the client, ``exp`` not
  passed and at most ``MAX_ASSERTION_LIFETIME`` after ``iat``, ``jti`` never seen;
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from tests.conftest import SmtpSink

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 600  # seconds between iat and exp that the server accepts


def thumbprints(cert_pem: bytes) -> tuple[str, str]:
    """(x5t, x5t#S256) of a PEM certificate: base64url SHA-1 and SHA-256 of its DER."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return (_b64url(cert.fingerprint(hashes.SHA1())),  # noqa: S303 - a thumbprint
            _b64url(cert.fingerprint(hashes.SHA256())))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Client:
    secret: str
    username: str  # the mailbox this client's tokens open
    revoked: bool = False
    refresh_tokens: set[str] = field(default_factory=set)
    #: Certificate credentials: x5t -> the registered certificate's public key.
    certificates: dict[str, RSAKey] = field(default_factory=dict)


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
        #: (header, claims) of every client assertion whose signature verified.
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.seen_jti: set[str] = set()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                """Quiet: the tests read what they need from the server object."""

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

    def add_certificate_client(self, client_id: str, username: str,
                               cert_pem: bytes) -> None:
        """A client that authenticates with the key of ``cert_pem`` (an app registration
        with that certificate uploaded, and no secret)."""
        with self.lock:
            self.clients[client_id] = Client("", username)
        self.add_certificate(client_id, cert_pem)

    def add_certificate(self, client_id: str, cert_pem: bytes) -> None:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = RSAKey.import_key(cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        with self.lock:
            self.clients[client_id].certificates[thumbprints(cert_pem)[0]] = key

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
                                  "scope": form.get("scope", ""),
                                  "client_assertion_type":
                                      form.get("client_assertion_type", "")})
            client = self.clients.get(client_id)
            if "client_assertion" in form or "client_assertion_type" in form:
                refusal = self._check_assertion(client_id, client, form)
                if refusal:
                    return 401, {"error": "invalid_client", "error_description": refusal}
            elif client is None or not client.secret or not secrets.compare_digest(
                    client.secret, secret):
                return 401, {"error": "invalid_client",
                             "error_description": "AADSTS7000215: Invalid client secret "
                                                  "provided. Ensure the secret being sent "
                                                  "is the client secret value."}
            assert client is not None
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

    def _check_assertion(self, client_id: str, client: Client | None,
                         form: dict[str, str]) -> str:
        """Why the client assertion is refused ("" when it is good); under the lock."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return ("AADSTS50027: client_assertion_type must be "
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        if client is None:
            return (f"AADSTS700016: Application with identifier '{client_id}' was not "
                    "found in the directory.")
        assertion = form.get("client_assertion", "")
        try:
            header = json.loads(base64.urlsafe_b64decode(
                assertion.split(".")[0] + "=="))
        except (ValueError, IndexError):
            return "AADSTS50027: JWT token is invalid or malformed."
        x5t = str(header.get("x5t", ""))
        key = client.certificates.get(x5t)
        if key is None:
            return ("AADSTS700027: Client assertion contains an invalid signature. "
                    "[Reason - The key was not found., Thumbprint of key used by client: "
                    f"'{x5t}', Please visit the Azure Portal, Graph Explorer or directly "
                    "use MS Graph to see configured keys for app Id "
                    f"'{client_id}'.]")
        try:
            token = jwt.decode(assertion, key, algorithms=["RS256"])
        except JoseError:
            return ("AADSTS700027: Client assertion contains an invalid signature. "
                    "[Reason - The signature does not verify with the key.]")
        claims = dict(token.claims)
        now = time.time()
        try:
            exp, iat = float(claims["exp"]), float(claims.get("iat", claims.get("nbf", 0)))
        except (KeyError, TypeError, ValueError):
            return "AADSTS50027: the client assertion has no valid exp."
        if exp <= now or float(claims.get("nbf", 0)) > now + 60:
            return "AADSTS700024: Client assertion is not within its valid time range."
        if exp - iat > MAX_ASSERTION_LIFETIME:
            return "AADSTS700024: Client assertion lifetime is too long."
        if claims.get("aud") != self.token_url:
            return ("AADSTS50013: Assertion audience claim does not match the required "
                    "value.")
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            return "AADSTS50027: the client assertion's iss and sub must be the client id."
        jti = str(claims.get("jti") or "")
        if not jti or jti in self.seen_jti:
            return "AADSTS50013: the client assertion's jti was used before (a replay)."
        self.seen_jti.add(jti)
        self.assertions.append((dict(token.header), claims))
        return ""

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


# -- certificates for certificate credentials -----------------------------------------


def make_certificate(name: str = "intake test app", days: int = 30,
                     not_before_days: int = 1) -> tuple[bytes, bytes]:
    """(private key PEM (PKCS#8), self-signed certificate PEM): an RSA 2048 key pair, as
    ``openssl req -x509 -newkey rsa:2048`` makes for an Entra app registration."""
    import datetime

    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=not_before_days))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
