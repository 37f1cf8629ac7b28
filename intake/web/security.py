"""Security headers on every response, the session cookie, and the trusted proxies.

Staff and public pages load nothing from third parties: CSP allows only
'self'. Pages that must be framed by an agency site (``/embed/<slug>``) set
their own ``frame-ancestors``; everything else refuses framing.

As OWASP ASVS 5.0 asks (V3.4.1, V3.3.1): ``Strict-Transport-Security:
max-age=31536000; includeSubDomains`` on every response when the service is
served over HTTPS, i.e. ``INTAKE_PUBLIC_URL`` is https (what the public is
given) or the request itself came over TLS (directly, or as a trusted proxy
says); the session cookie is ``__Host-session``: Secure, HttpOnly,
SameSite=Lax, Path=/ and no Domain (set in :func:`init_app`).

Behind a load balancer the client's address is in ``X-Forwarded-For``, which
anyone can also send: it is read only from the proxies ``INTAKE_TRUSTED_PROXIES``
names (:func:`trust_proxies`), so rate limits and logs see the real client
and a client on the open internet cannot choose the address it is counted as
(ASVS 5.0 V4.1.3: headers an intermediary sets cannot be overridden by the end user).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from intake.settings import Settings

#: ASVS 5.0 V3.4.1: at least a year, for all subdomains.
HSTS = "max-age=31536000; includeSubDomains"
#: The session cookie (ASVS 5.0 V3.3.1): the __Host- prefix makes browsers refuse it
#: unless it is Secure, has Path=/ and no Domain, so no sibling host can set or shadow it.
SESSION_COOKIE_NAME = "__Host-session"

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


def init_app(app: Flask, settings: Settings) -> None:
    app.session_interface = SigningOnceSessions()
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE_NAME,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,
    )
    trust_proxies(app, settings)
    always_https = settings.served_over_https

    @app.after_request
    def _headers(response: Response) -> Response:
        # What setdefault would do for each, with one look at the headers already set.
        headers = response.headers
        present = {name.lower() for name in headers.keys()}
        for lowered, name, value in _DEFAULT_HEADERS:
            if lowered not in present:
                headers.add(name, value)
        if always_https or request.is_secure:
            headers["Strict-Transport-Security"] = HSTS
        return response


def trust_proxies(app: Flask, settings: Settings) -> None:
    """Read the client's address (and scheme) from the proxies in front, and only them.

    A hop count: werkzeug's ``ProxyFix`` takes the address that many hops from
    the right of ``X-Forwarded-For`` (each trusted proxy appends the address it
    saw). Addresses or networks: :class:`TrustedProxies`. Neither (the
    default): the forwarded headers are ignored. ``X-Forwarded-Host`` is never
    read: the links intake writes come from ``INTAKE_PUBLIC_URL``.
    """
    hops = settings.trusted_proxy_hops
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)
    elif settings.trusted_proxy_networks:
        app.wsgi_app = TrustedProxies(  # type: ignore[method-assign,assignment]
            app.wsgi_app, settings.trusted_proxy_networks)


class TrustedProxies:
    """WSGI middleware: the client is the nearest address in ``X-Forwarded-For`` that is
    not one of the trusted proxies, if the request came from a trusted proxy at all.

    Walking from the right, every address appended by a trusted proxy is
    passed over; the first one that is not trusted is the client (what comes
    left of it, the client may have written itself). A request straight from
    an untrusted peer keeps its own address, whatever its headers say.
    """

    def __init__(self, app: WSGIApplication, networks: Iterable[str]) -> None:
        self.app = app
        self.networks = tuple(ipaddress.ip_network(n) for n in networks)

    def trusted(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)

    def __call__(self, env: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        peer = env.get("REMOTE_ADDR", "")
        if self.trusted(peer):
            client = peer
            forwarded = env.get("HTTP_X_FORWARDED_FOR", "").split(",")
            for hop in reversed([h.strip() for h in forwarded if h.strip()]):
                if _ip(hop) is None:
                    break  # not an address: nothing left of it can be believed either
                client = hop
                if not self.trusted(hop):
                    break
            env["REMOTE_ADDR"] = client
            scheme = env.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
            if scheme in ("http", "https"):
                env["wsgi.url_scheme"] = scheme
        return self.app(env, start_response)


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None
