"""Access tokens for XOAUTH2 (IMAP and SMTP), from a token endpoint, cached in memory.

authlib's requests client does the OAuth2 protocol (client credentials and refresh
token grants, client authentication, the error responses); this module adds the
cache and the plain-words errors. One :class:`TokenCache` per process
(:data:`TOKENS`): a token is kept per (token URL, client, scope, grant) and
fetched again ``SKEW_SECONDS`` before it expires, or at once after
:meth:`TokenCache.invalidate` (the mail server refused it).

The IMAP edge (:mod:`intake.mail.imap`) imports this module too: the one
``ignore_imports`` exception of the gate's contract (pyproject.toml). Fetching a
token sends nothing of a person's anywhere; the gate still guards every message.
Neither the secret nor a token is ever logged, put in an exception's text or
repr (:func:`intake.core.oauth2.scrub` cleans what the provider answers).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.common.urls import add_params_to_qs
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from joserfc.jwk import RSAKey

from intake.core.oauth2 import OAuth2Config, explain_refusal, scrub

log = logging.getLogger("intake.oauth2")

SKEW_SECONDS = 60.0
DEFAULT_LIFETIME = 3600.0
TIMEOUT = 30.0
#: Seconds a client assertion (the signed JWT of certificate credentials) is valid.
ASSERTION_LIFETIME = 300


class OAuth2Error(ConnectionError):
    """No token: the endpoint refused (``refused``) or could not be reached.

    A ``ConnectionError`` so that the poller and the SMTP sender treat it as the
    mail server being unusable (retried later, counted), never as the message's fault.
    ``str()`` is one plain line without secrets.
    """

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


class CertificateAssertion(PrivateKeyJWT):
    """authlib's ``private_key_jwt`` client authentication (RFC 7523) as Microsoft Entra
    wants it: RS256, the certificate's thumbprints in the header (``x5t``,
    ``x5t#S256``), aud = the token URL, iss = sub = client_id, a fresh ``jti``,
    ``nbf`` = ``iat`` = now and a short ``exp``; ``client_id`` in the body too.

    authlib signs (joserfc); this class only fixes the claims per request (authlib's
    default lifetime is an hour and it would reuse a ``jti`` put in ``claims``)."""

    def __init__(self, token_endpoint: str, headers: dict[str, str],
                 lifetime: int = ASSERTION_LIFETIME) -> None:
        super().__init__(token_endpoint, headers=headers, alg="RS256")
        self.lifetime = lifetime

    def sign(self, auth: Any, token_endpoint: str) -> str:
        now = int(time.time())
        return str(private_key_jwt_sign(
            RSAKey.import_key(auth.client_secret), client_id=auth.client_id,
            token_endpoint=token_endpoint, alg="RS256", claims={"nbf": now},
            header=dict(self.headers or {}), issued_at=now, expires_at=now + self.lifetime))

    def __call__(self, auth: Any, method: str, uri: str, headers: Any,
                 body: str) -> tuple[str, Any, str]:
        uri, headers, body = super().__call__(auth, method, uri, headers, body)
        return uri, headers, add_params_to_qs(body, [("client_id", auth.client_id)])


@dataclass
class _Cached:
    token: str = field(repr=False)
    expires_at: float


class TokenCache:
    """Access tokens per (token URL, client, scope, grant); thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 skew: float = SKEW_SECONDS, timeout: float = TIMEOUT) -> None:
        self.clock = clock
        self.skew = skew
        self.timeout = timeout
        self._tokens: dict[tuple[str, ...], _Cached] = {}
        self._lock = threading.Lock()
        self.fetches = 0  # how many tokens were fetched (for tests and the check)

    def get(self, config: OAuth2Config) -> str:
        """A token valid for at least ``skew`` seconds more: the cached one, or a new one."""
        key = config.cache_key
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at - self.skew > self.clock():
                return cached.token
        token, lifetime = self._fetch(config)
        with self._lock:
            self._tokens[key] = _Cached(token, self.clock() + lifetime)
        return token

    def invalidate(self, config: OAuth2Config, token: str | None = None) -> None:
        """Forget the token (the server refused it); only ``token`` if given and still cached."""
        with self._lock:
            cached = self._tokens.get(config.cache_key)
            if cached is not None and (token is None or cached.token == token):
                del self._tokens[config.cache_key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _fetch(self, config: OAuth2Config) -> tuple[str, float]:
        host = urlsplit(config.token_url).netloc
        if config.certificate is not None:
            session = OAuth2Session(client_id=config.client_id,
                                    client_secret=config.certificate.private_key,
                                    scope=config.scope,
                                    token_endpoint_auth_method=CertificateAssertion(
                                        config.token_url, config.certificate.headers))
        else:
            session = OAuth2Session(client_id=config.client_id,
                                    client_secret=config.client_secret, scope=config.scope,
                                    token_endpoint_auth_method="client_secret_post")  # noqa: S106
        try:
            if config.grant == "refresh_token":
                answer = session.refresh_token(config.token_url,
                                               refresh_token=config.refresh_token,
                                               timeout=self.timeout)
            else:
                answer = session.fetch_token(config.token_url, grant_type="client_credentials",
                                             timeout=self.timeout)
        except OAuthError as exc:
            reason = explain_refusal(config, exc.error or "", exc.description or "")
            log.warning("token endpoint %s refused client %s: %s", host, config.client_id,
                        reason)
            raise OAuth2Error(f"the token endpoint {host} refused: {reason}",
                              refused=True) from None
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            log.warning("token endpoint %s answered HTTP %s", host, status)
            raise OAuth2Error(f"the token endpoint {host} answered HTTP {status}",
                              refused=False) from None
        except (requests.RequestException, OSError, ValueError) as exc:
            log.warning("token endpoint %s unreachable: %s", host, type(exc).__name__)
            raise OAuth2Error(f"could not reach the token endpoint {host} "
                              f"({type(exc).__name__})", refused=False) from None
        finally:
            session.close()
        token = str(answer.get("access_token") or "")
        if not token:
            raise OAuth2Error(f"the token endpoint {host} answered without an access token",
                              refused=True)
        try:
            lifetime = float(answer.get("expires_in") or DEFAULT_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME
        self.fetches += 1
        log.info("token endpoint %s: new access token for client %s (valid %d s)", host,
                 config.client_id, int(lifetime))
        return token, lifetime


#: The process's tokens (IMAP pollers and the SMTP sender share them).
TOKENS = TokenCache()


def with_token(config: OAuth2Config, login: Callable[[str], None],
               refused: tuple[type[BaseException], ...],
               tokens: TokenCache | None = None) -> bool:
    """``login(token)``; if the server refuses it (one of ``refused``), forget the token,
    fetch a new one and try once more. True when a retry was needed.
    The second refusal propagates (the caller counts the failure)."""
    tokens = tokens or TOKENS
    token = tokens.get(config)
    try:
        login(token)
        return False
    except refused:
        log.info("mail server refused the cached access token; fetching a new one")
        tokens.invalidate(config, token)
    login(tokens.get(config))
    return True


__all__ = ["TOKENS", "CertificateAssertion", "OAuth2Error", "TokenCache", "scrub", "with_token"]
