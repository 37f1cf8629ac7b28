"""OAuth2 (XOAUTH2) for mail servers: the configuration, parsed; the SASL string; plain errors.

Pure: values in, values out. The ``oauth2:`` section of a mailbox (the mailboxes
file) and of the SMTP server (``INTAKE_SMTP_OAUTH2_FILE``) is the same::

    auth: oauth2                     # password (the default) | oauth2
    user: info@agency.example.gov    # the mailbox the token opens (XOAUTH2 "user=")
    oauth2:
      provider: microsoft            # microsoft (with tenant) | google | or token_url:
      tenant: 0d7c…-…                # Microsoft: the directory (tenant) id
      # token_url: https://idp.example.gov/oauth2/token
      client_id: 8f1e…
      client_secret_file: /etc/intake/m365.secret   # or client_secret_env: INTAKE_OAUTH2_…
      # or a certificate instead of a secret (Microsoft Entra "certificate credentials"):
      # client_certificate_file: /etc/intake/m365.pem  # the private key and the certificate
      # client_key_file: /etc/intake/m365.key          # (or the key apart from the certificate)
      # client_certificate_env: INTAKE_OAUTH2_…        # (or both, PEM, in a variable)
      grant: client_credentials      # client_credentials (default) | refresh_token
      # refresh_token_file: …        # or refresh_token_env: INTAKE_OAUTH2_… (refresh_token)
      scope: https://outlook.office365.com/.default  # default per provider

A secret or token written in the YAML itself is refused: it belongs in a file
(mode 0600) or an environment variable, never in a file that is copied around.
The same holds for a certificate and its private key. With a certificate the
client authenticates to the token endpoint with a signed JWT (RFC 7523,
``private_key_jwt``, RS256) whose header names the certificate by its SHA-1
thumbprint (``x5t``, what Microsoft Entra looks the key up by) and SHA-256
thumbprint (``x5t#S256``); :class:`ClientCertificate` holds what is needed.
The fetching of tokens is :mod:`intake.outbound.oauth2` (an HTTP client).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

GRANTS = ("client_credentials", "refresh_token")
PROVIDERS = ("microsoft", "google")
SECRET_ENV_PREFIX = "INTAKE_OAUTH2_"  # noqa: S105 - a variable prefix, not a secret

MICROSOFT_TOKEN_URL = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"  # noqa: S105
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
DEFAULT_SCOPES = {
    "microsoft": "https://outlook.office365.com/.default",
    "google": "https://mail.google.com/",
}
# A tenant is a GUID or a verified domain ("agency.onmicrosoft.com"); never a path.
_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,253}")
_KNOWN = {"provider", "tenant", "token_url", "client_id", "client_secret_file",
          "client_secret_env", "scope", "grant", "refresh_token_file", "refresh_token_env",
          "client_certificate_file", "client_key_file", "client_certificate_env"}
_FORBIDDEN = ("client_secret", "refresh_token", "access_token", "secret", "password",
              "client_certificate", "client_key", "private_key", "certificate")
_SECRET_KEYS = ("client_secret_file", "client_secret_env")
_CERT_KEYS = ("client_certificate_file", "client_certificate_env")
_PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.S)


class OAuth2ConfigError(ValueError):
    """An ``oauth2:`` section that cannot work; the message is one line, with no secret."""


@dataclass(frozen=True)
class ClientCertificate:
    """A client's certificate credential: its private key (PEM, never shown) and the
    certificate's thumbprints, base64url without padding, as JWT headers want them."""

    private_key: str = field(repr=False)
    x5t: str  # SHA-1 of the DER certificate (Microsoft Entra's key id)
    x5t_s256: str  # SHA-256 of the DER certificate
    not_after: str = ""  # ISO date, for messages

    @property
    def headers(self) -> dict[str, str]:
        return {"x5t": self.x5t, "x5t#S256": self.x5t_s256}

    @property
    def secrets(self) -> tuple[str, ...]:
        """The key and each line of its base64 body (for scrubbing error texts)."""
        lines = [line.strip() for line in self.private_key.splitlines()]
        return (self.private_key, *(line for line in lines
                                    if len(line) >= 16 and not line.startswith("-----")))


@dataclass(frozen=True)
class OAuth2Config:
    """How to get an access token for one mailbox or SMTP server."""

    token_url: str
    client_id: str
    scope: str
    grant: str = "client_credentials"
    client_secret: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    #: Where the secret comes from, for error messages ("client_secret_file /etc/…").
    secret_source: str = ""
    provider: str = ""
    #: Certificate credentials instead of ``client_secret`` (exactly one of the two).
    certificate: ClientCertificate | None = field(default=None, repr=False)

    @property
    def cache_key(self) -> tuple[str, str, str, str]:
        """Tokens are cached per (token URL, client, scope, grant)."""
        return (self.token_url, self.client_id, self.scope, self.grant)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never be shown (for scrubbing error texts)."""
        found = tuple(s for s in (self.client_secret, self.refresh_token) if s)
        return found + (self.certificate.secrets if self.certificate else ())


def xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 SASL initial response (before base64): ``user=…^Aauth=Bearer …^A^A``.

    A user or token with a control character (which could end a field) is refused."""
    if not (user + token).isprintable():
        raise ValueError("XOAUTH2: the user or the token holds a control character")
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def parse_auth(item: Mapping[str, Any], where: str, env: Mapping[str, str] | None,
               read_file: Callable[[str], str] | None) -> OAuth2Config | None:
    """``auth:`` and ``oauth2:`` of one mailbox/SMTP description: None for ``password``."""
    auth = str(item.get("auth", "password")).strip().lower()
    if auth not in ("password", "oauth2"):
        raise OAuth2ConfigError(f"{where}: auth must be password or oauth2")
    if auth == "password":
        if "oauth2" in item:
            raise OAuth2ConfigError(f"{where}: an oauth2 section needs auth: oauth2")
        return None
    section = item.get("oauth2")
    if not isinstance(section, dict):
        raise OAuth2ConfigError(f"{where}: auth: oauth2 needs an oauth2: section")
    return parse_oauth2(section, f"{where}: oauth2", env, read_file)


def parse_oauth2(section: Mapping[str, Any], where: str, env: Mapping[str, str] | None,
                 read_file: Callable[[str], str] | None) -> OAuth2Config:
    """One ``oauth2:`` section. ``read_file`` reads secret files; ``env`` resolves
    ``*_env`` (``INTAKE_OAUTH2_*`` variables only)."""
    keys = set(map(str, section))
    planted = sorted(k for k in keys if k in _FORBIDDEN)
    if planted:
        name = planted[0] if planted[0] in ("client_secret", "refresh_token") else (
            "client_certificate" if "cert" in planted[0] or "key" in planted[0]
            else "client_secret")
        raise OAuth2ConfigError(
            f"{where}: a secret ('{planted[0]}') must never be written in the file: give "
            f"{name}_file (a file of mode 0600) or {name}_env (an {SECRET_ENV_PREFIX}* "
            "variable)")
    unknown = sorted(keys - _KNOWN)
    if unknown:
        raise OAuth2ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    provider = _str(section, "provider", where, "").lower()
    if provider and provider not in PROVIDERS:
        raise OAuth2ConfigError(f"{where}: provider must be microsoft or google "
                                "(or leave it out and give token_url)")
    token_url = _str(section, "token_url", where, "")
    if provider and token_url:
        raise OAuth2ConfigError(f"{where}: give provider or token_url, not both")
    if provider == "microsoft":
        tenant = _str(section, "tenant", where)
        if not _TENANT_RE.fullmatch(tenant):
            raise OAuth2ConfigError(f"{where}: tenant must be the directory (tenant) id "
                                    "or a domain")
        token_url = MICROSOFT_TOKEN_URL.format(tenant=tenant)
    elif "tenant" in section:
        raise OAuth2ConfigError(f"{where}: tenant is for provider: microsoft")
    elif provider == "google":
        token_url = GOOGLE_TOKEN_URL
    if not token_url:
        raise OAuth2ConfigError(f"{where}: give provider (microsoft, google) or token_url")
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s]*)?", token_url):
        raise OAuth2ConfigError(f"{where}: token_url must be an http(s) URL")
    if token_url.startswith("http://") and not re.match(
            r"http://(127\.0\.0\.1|localhost|\[::1\])[:/]", token_url):
        raise OAuth2ConfigError(f"{where}: token_url must be https (plain http only on "
                                "loopback)")
    grant = _str(section, "grant", where, "client_credentials").lower()
    if grant not in GRANTS:
        raise OAuth2ConfigError(f"{where}: grant must be client_credentials or refresh_token")
    scope = _str(section, "scope", where, DEFAULT_SCOPES.get(provider, ""))
    if not scope:
        raise OAuth2ConfigError(f"{where}: scope is required with token_url")
    secret_keys = [k for k in _SECRET_KEYS if k in section]
    cert_keys = [k for k in _CERT_KEYS if k in section]
    if "client_key_file" in section and "client_certificate_file" not in section:
        raise OAuth2ConfigError(f"{where}: client_key_file goes with client_certificate_file")
    if secret_keys and cert_keys:
        raise OAuth2ConfigError(f"{where}: give a client secret or a client certificate, "
                                "not both")
    secret, source, certificate = "", "", None
    if cert_keys:
        if provider == "google":
            raise OAuth2ConfigError(f"{where}: provider: google takes a client secret "
                                    "(Google's OAuth clients have no certificate credentials)")
        certificate, source = _certificate(section, where, env, read_file)
    else:
        secret, source = _secret(section, "client_secret", where, env, read_file,
                                 required=True)
    refresh = ""
    if grant == "refresh_token":
        refresh, _ = _secret(section, "refresh_token", where, env, read_file, required=True)
    elif "refresh_token_file" in section or "refresh_token_env" in section:
        raise OAuth2ConfigError(f"{where}: a refresh token needs grant: refresh_token")
    return OAuth2Config(token_url=token_url, client_id=_str(section, "client_id", where),
                        scope=scope, grant=grant, client_secret=secret, refresh_token=refresh,
                        secret_source=source, provider=provider, certificate=certificate)


def _str(section: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = section.get(key, default)
    if value is None:
        raise OAuth2ConfigError(f"{where}: '{key}' is required")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise OAuth2ConfigError(f"{where}: '{key}' must be a string")
    text = str(value).strip()
    if default is None and not text:
        raise OAuth2ConfigError(f"{where}: '{key}' must not be empty")
    return text


def _secret(section: Mapping[str, Any], name: str, where: str, env: Mapping[str, str] | None,
            read_file: Callable[[str], str] | None, *, required: bool) -> tuple[str, str]:
    """(the secret, where it comes from) from exactly one of ``NAME_file``, ``NAME_env``."""
    given = [k for k in (f"{name}_file", f"{name}_env") if k in section]
    if len(given) != 1:
        if not given and not required:
            return "", ""
        raise OAuth2ConfigError(f"{where}: give exactly one of {name}_file, {name}_env")
    key = given[0]
    ref = _str(section, key, where)
    if key.endswith("_env"):
        if not ref.startswith(SECRET_ENV_PREFIX):
            raise OAuth2ConfigError(f"{where}: {key} must name an {SECRET_ENV_PREFIX}* "
                                    "variable")
        value = (env or {}).get(ref, "").strip()
        if not value:
            raise OAuth2ConfigError(f"{where}: {ref} is not set")
        return value, f"{key} {ref}"
    if read_file is None:
        raise OAuth2ConfigError(f"{where}: {key} cannot be read here")
    try:
        value = str(read_file(ref)).strip()
    except OSError as exc:
        raise OAuth2ConfigError(f"{where}: cannot read {key}: "
                                f"{exc.strerror or type(exc).__name__}") from None
    if not value:
        raise OAuth2ConfigError(f"{where}: {key} is empty")
    return value, f"{key} {ref}"


def _certificate(section: Mapping[str, Any], where: str, env: Mapping[str, str] | None,
                 read_file: Callable[[str], str] | None) -> tuple[ClientCertificate, str]:
    """The certificate credential from ``client_certificate_file`` (+ ``client_key_file``)
    or ``client_certificate_env``; errors name the source, never the key."""
    given = [k for k in _CERT_KEYS if k in section]
    if len(given) != 1:
        raise OAuth2ConfigError(f"{where}: give exactly one of "
                                "client_certificate_file, client_certificate_env")
    if "client_key_file" in section and given[0] != "client_certificate_file":
        raise OAuth2ConfigError(f"{where}: client_key_file goes with client_certificate_file")
    text, source = _secret(section, "client_certificate", where, env, read_file,
                           required=True)
    if "client_key_file" in section:
        key_text, key_source = _secret(section, "client_key", where, None, read_file,
                                       required=True)
        text = f"{text}\n{key_text}"
        source = f"{source} and {key_source}"
    return load_certificate(text, f"{where}: {source}"), source


def load_certificate(text: str, where: str) -> ClientCertificate:
    """A PEM bundle (one private key, its certificate first among the certificates) as a
    :class:`ClientCertificate`. Refused: no key, no certificate, an encrypted key, a key
    other than RSA (RS256), a key that is not the certificate's, an expired certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    text = text.replace("\\n", "\n")  # a variable may hold the PEM with literal \n
    blocks = [(m.group(1), m.group(0)) for m in _PEM_RE.finditer(text)]
    keys = [b for kind, b in blocks if kind.endswith("PRIVATE KEY")]
    certs = [b for kind, b in blocks if kind == "CERTIFICATE"]
    encrypted = OAuth2ConfigError(f"{where}: the private key is encrypted; give it "
                                  "unencrypted in a file of mode 0600")
    if any(kind == "ENCRYPTED PRIVATE KEY" for kind, _ in blocks):
        raise encrypted
    if len(keys) != 1:
        raise OAuth2ConfigError(f"{where}: expected one PEM private key (BEGIN PRIVATE KEY "
                                f"or BEGIN RSA PRIVATE KEY), found {len(keys)}")
    if not certs:
        raise OAuth2ConfigError(f"{where}: expected a PEM certificate (BEGIN CERTIFICATE), "
                                "found none")
    try:
        key = serialization.load_pem_private_key(keys[0].encode(), password=None)
    except TypeError:  # "password was not given but private key is encrypted"
        raise encrypted from None
    except ValueError:
        raise OAuth2ConfigError(f"{where}: the private key cannot be read "
                                "(not a valid PEM key)") from None
    try:
        cert = x509.load_pem_x509_certificate(certs[0].encode())
    except ValueError:
        raise OAuth2ConfigError(f"{where}: the certificate cannot be read "
                                "(not a valid PEM certificate)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise OAuth2ConfigError(f"{where}: the private key must be RSA (RS256 is what "
                                "Microsoft Entra accepts)")
    if cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo):
        raise OAuth2ConfigError(f"{where}: the private key does not belong to the "
                                "(first) certificate")
    not_after = cert.not_valid_after_utc
    if not_after <= datetime.now(UTC):
        raise OAuth2ConfigError(f"{where}: the certificate expired on "
                                f"{not_after.date().isoformat()}")
    # SHA-1 here is a name (the x5t thumbprint JWT and Entra use), not a protection.
    sha1 = cert.fingerprint(hashes.SHA1())  # noqa: S303
    return ClientCertificate(private_key=keys[0], x5t=_b64url(sha1),
                             x5t_s256=_b64url(cert.fingerprint(hashes.SHA256())),
                             not_after=not_after.date().isoformat())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_auth_file(text: str, where: str, env: Mapping[str, str] | None,
                    read_file: Callable[[str], str] | None,
                    default_user: str | None = None) -> tuple[str, OAuth2Config]:
    """(user, config) of an SMTP OAuth2 file: ``user``, ``auth: oauth2``, ``oauth2:``."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        raise OAuth2ConfigError(f"{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise OAuth2ConfigError(f"{where}: expected a mapping (user, auth, oauth2)")
    unknown = sorted(set(map(str, data)) - {"user", "auth", "oauth2"})
    if unknown:
        raise OAuth2ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    user = str(data.get("user") or default_user or "").strip()
    if not user or not user.isprintable():
        raise OAuth2ConfigError(f"{where}: 'user' (the mailbox that sends) is required")
    config = parse_auth(data, where, env, read_file)
    if config is None:
        raise OAuth2ConfigError(f"{where}: expected auth: oauth2")
    return user, config


# -- the provider's refusal in plain words ----------------------------------------------

_HINTS = {
    "AADSTS7000215": "invalid client secret",
    "AADSTS7000222": "the client secret has expired",
    "AADSTS700016": "no such application in this tenant (client_id or tenant wrong)",
    "AADSTS90002": "no such tenant",
    "AADSTS900023": "the tenant is not a valid id or domain",
    "AADSTS70011": "the scope is not valid for this application",
    "AADSTS65001": "the application lacks admin consent for the permission",
    "AADSTS50034": "the user account does not exist in this directory",
    "AADSTS700082": "the refresh token has expired (sign in again)",
    "AADSTS700027": "the client assertion's signature was refused: the certificate is not "
                    "the one uploaded to the app registration (or it was removed)",
    "AADSTS700024": "the client assertion is not within its valid time range (check the "
                    "clock of this server)",
    "AADSTS7000274": "the certificate uploaded to the app registration has expired",
}
_OAUTH_ERRORS = {
    "invalid_client": "the client was refused (wrong or revoked client id or secret)",
    "invalid_grant": "the grant was refused (the refresh token is wrong, expired or revoked)",
    "unauthorized_client": "this client may not use this grant",
    "invalid_scope": "the scope was refused",
    "unsupported_grant_type": "the token endpoint does not offer this grant",
    "invalid_request": "the token request was refused as malformed",
}


def explain_refusal(config: OAuth2Config, error: str, description: str) -> str:
    """A token endpoint's refusal as one plain line, with what to check; no secret in it."""
    error = scrub(_printable(str(error))[:80], config)
    description = scrub(_printable(str(description)), config)
    code = re.search(r"AADSTS\d+", description)
    first = description.split(". ")[0][:200] if description else ""
    if code and code.group() in _HINTS:
        plain = f"{code.group()}: {_HINTS[code.group()]}"
    elif code:
        plain = f"{code.group()}: {first}"
    else:
        plain = f"{error}: {_OAUTH_ERRORS.get(error, 'refused')}"
        if first:
            plain += f" ({first})"
    check = config.secret_source or "the oauth2 section"
    if config.grant == "refresh_token" and error == "invalid_grant":
        check = "the refresh token (refresh_token_file / refresh_token_env)"
    return f"{plain} — check {check}"


def _printable(text: str) -> str:
    """One line of printable characters: what a (hostile) endpoint wrote, made harmless."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def scrub(text: str, config: OAuth2Config, tokens: tuple[str, ...] = ()) -> str:
    """``text`` without the configuration's secrets or the given tokens."""
    for secret in (*config.secrets, *tokens):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text
