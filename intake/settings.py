"""Configuration: the only module that reads ``INTAKE_*`` environment variables.

Everything else receives a :class:`Settings` value. With nothing set, the
embedded defaults apply: SQLite in the instance folder, the in-process
dramatiq broker and the shipped ``routing_rules.yaml``. A bad value raises
:class:`SettingsError` whose message is one line naming the variable; the CLI
prints it and exits non-zero.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from intake.core.oauth2 import OAuth2Config, OAuth2ConfigError, parse_auth_file

PREFIX = "INTAKE_"

DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres")
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")
SMTP_SCHEMES = ("smtp", "smtps", "smtp+starttls")
IMAP_SCHEMES = ("imap", "imaps", "imap+starttls")


class SettingsError(ValueError):
    """A configuration value that cannot work; the message is one line."""


def packaged_rules_path() -> Path:
    """The routing rules shipped with the package (the embedded default)."""
    return Path(str(resources.files("intake") / "defaults" / "routing_rules.yaml"))


def packaged_retention_path() -> Path:
    """The example retention schedule shipped with the package."""
    return Path(str(resources.files("intake") / "defaults" / "retention.yaml"))


@dataclass(frozen=True)
class Settings:
    """Typed, frozen configuration. Build with :func:`load_settings`."""

    instance_path: Path
    database_url: str
    broker_url: str | None  # None = embedded in-process broker
    rules_path: Path
    secret_key: str = field(repr=False)
    secret_key_is_ephemeral: bool
    smtp_url: str | None = field(default=None, repr=False)
    imap_url: str | None = field(default=None, repr=False)
    mailboxes_file: Path | None = None
    # INTAKE_IMAP_PASSWORD and INTAKE_IMAP_PASSWORD_<NAME>: mailbox passwords kept out of URLs
    # and files; a mailboxes file names one with ``password_env``.
    imap_passwords: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: ``INTAKE_OAUTH2_*``: the secrets an ``oauth2:`` section names with ``*_env``.
    oauth2_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: ``INTAKE_SMTP_OAUTH2_FILE``: XOAUTH2 for the SMTP server (intake.core.oauth2),
    #: read and checked at start-up: the user it logs in as and the token settings.
    smtp_oauth2_file: Path | None = None
    smtp_oauth2_user: str | None = None
    smtp_oauth2: OAuth2Config | None = field(default=None, repr=False)
    record_prefix: str = "EX"
    relay_domain: str = "relay.intake.invalid"
    mail_from: str = "intake@intake.invalid"
    public_url: str = "http://127.0.0.1:5000"
    webhook_secret: str = field(default="", repr=False)
    ack_limit_per_hour: int = 5
    smtp_timeout_seconds: float = 30.0
    # Job machinery: a work item whose message has waited this long is re-sent.
    redeliver_after_seconds: float = 60.0
    sweep_interval_seconds: float = 15.0
    lease_seconds: float = 300.0
    max_attempts: int = 8
    retry_base_seconds: float = 5.0
    # Delivery (mail, webhooks): transient failures back off per destination up to
    # retry_cap_seconds; a destination failing circuit_failures times in a row is paused
    # (circuit open) and probed after a cool-down; an item still undelivered after
    # delivery_max_age_seconds (GOV.UK Notify's 72 hours) becomes a dead letter.
    retry_cap_seconds: float = 600.0
    circuit_failures: int = 5
    circuit_cooldown_seconds: float = 30.0
    delivery_max_age_seconds: float = 3 * 24 * 3600.0
    worker_threads: int = 4
    # Processes that parse and scan fetched mail (intake/services/mail_intake.py:
    # MailPool); 0: the storing process does it itself.
    mail_workers: int = 0
    log_level: str = "INFO"
    # Public forms: INTAKE_FORMS (None = the packaged forms.yaml) and the per-address
    # rate limit of form submissions (Flask-Limiter notation).
    forms_path: Path | None = None
    form_rate_limit: str = "10/minute;100/hour"
    # INTAKE_ALLOW_STAFF_WITHOUT_TOTP: development only. Staff accounts without a second
    # factor may be created and may log in; the service warns at start while any exists.
    allow_staff_without_totp: bool = False
    # Retention: INTAKE_RETENTION, the schedule file (None = the packaged example, which a
    # dry run reads but `intake retention run --apply` refuses to dispose of records under).
    retention_path: Path | None = None
    # The web edge (issue 23): where rate-limit counters live, which proxies are trusted.
    # rate_limit_url: a redis:// URL, "database" (the shared table) or "memory" (this
    # process only: one process). trusted_proxy_hops / trusted_proxy_networks: at most one
    # of them is set (INTAKE_TRUSTED_PROXIES); neither = X-Forwarded-* is ignored.
    rate_limit_url: str = "database"
    trusted_proxy_hops: int = 0
    trusted_proxy_networks: tuple[str, ...] = ()
    # INTAKE_TIMEZONE: the state's time zone (IANA name); the citizen's pages and messages
    # show times in it.
    timezone: str = "America/New_York"

    @property
    def served_over_https(self) -> bool:
        """The public base URL is https: every page is reached over TLS (HSTS is sent)."""
        return self.public_url.startswith("https://")
    # The public records: INTAKE_RECORDS (None = the packaged records.yaml): publish rules
    # and the reason codes with their citations.
    records_path: Path | None = None
    # Operations (issue 26): a worker process whose heartbeat is older than
    # heartbeat_stale_seconds counts as gone for /readyz; /metrics answers only to
    # metrics_allow (addresses/CIDRs) or a bearer metrics_token; neither set = 404.
    heartbeat_stale_seconds: float = 60.0
    metrics_allow: tuple[str, ...] = ()
    metrics_token: str = field(default="", repr=False)
    # gunicorn (intake/gunicorn_conf.py): where to listen, processes, threads per process.
    web_bind: str = "127.0.0.1:8000"
    web_workers: int = 2
    web_threads: int = 4
    # INTAKE_DIGEST_RECIPIENTS: the agencies that get the daily "new entries" digest
    # (`intake notices digest`), each with the address it goes to; others: off.
    digest_recipients: Mapping[str, str] = field(default_factory=dict)
    # Visit statistics (issue 29): the public pages' counters are written every
    # stats_flush_seconds (INTAKE_STATS_FLUSH_SECONDS) and at shutdown; reports show any
    # count below stats_min_cell (INTAKE_STATS_MIN_CELL) as "< N". The day's key of the
    # unique-visitor hashes lives in this process, or in rate_limit_url's Redis when it is one.
    stats_flush_seconds: float = 60.0
    stats_min_cell: int = 10
    # Inbound mail pushed over HTTP (POST /inbound/<source>): INTAKE_INBOUND_FILE names the
    # sources (YAML); each source's secret comes from INTAKE_INBOUND_SECRET_<NAME> or the
    # source's secret_file, never from the YAML (intake.core.inbound).
    inbound_file: Path | None = None
    inbound_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Live Help (issue 30): INTAKE_HELP, the YAML of the agencies that take chats (hours,
    # wait before offering a message instead, exit interview); None = the packaged
    # example. INTAKE_HELP_STREAM_SECONDS: how long one event stream stays open before the
    # browser reconnects (with Last-Event-ID). INTAKE_HELP_MESSAGE_RATE: messages a chat
    # may post (Flask-Limiter notation).
    help_path: Path | None = None
    help_stream_seconds: float = 25.0
    help_message_rate: str = "20/minute;200/hour"

    @property
    def broker_kind(self) -> str:
        if self.broker_url is None:
            return "embedded"
        return "redis" if self.broker_url.startswith("redis") else "rabbitmq"

    @property
    def database_kind(self) -> str:
        return "sqlite" if self.database_url.startswith("sqlite") else "postgresql"

    def derived_key(self, purpose: str) -> bytes:
        """A key for one purpose, derived from (never equal to) the secret key.

        HMAC-SHA256(secret key, "intake " + purpose): finding hashes, form
        tokens, rate-limit keys and webhook signatures never share a key.
        """
        return _derive_key(self.secret_key, purpose)

    def originals_key(self) -> bytes:
        """The key-encryption key of the sealed originals' per-entry keys.

        HKDF-SHA256 of the secret key. Without a configured secret key (a random
        one per process), a random key kept in the instance folder
        (``originals.key``, mode 0600, made on first use): originals must stay
        readable after a restart.
        """
        if self.secret_key_is_ephemeral:
            return _instance_key(self.instance_path / ORIGINALS_KEY_FILE)
        return _hkdf(self.secret_key, "originals key-encryption key")

    @property
    def retention_schedule_path(self) -> Path:
        """The retention schedule in force: INTAKE_RETENTION, else the packaged example."""
        return self.retention_path or packaged_retention_path()

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def _check_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    value = value.strip()
    scheme = _scheme(value)
    if scheme not in schemes:
        shown = scheme or "(none)"
        raise SettingsError(
            f"{name}: unknown URL scheme '{shown}' (expected one of: {', '.join(schemes)})"
        )
    return value


def _normalise_database_url(value: str) -> str:
    scheme = _scheme(value)
    if scheme in ("postgres", "postgresql"):
        # psycopg 3 is the driver we ship; make SQLAlchemy use it.
        return "postgresql+psycopg" + value[len(scheme):]
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: '{raw}' is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum:g}, got {raw}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: '{raw}' is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {raw}")
    return value


def _readable_file(name: str, raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_file():
        raise SettingsError(f"{name}: file not found: {raw}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read {raw}: {exc.strerror}") from None
    return path


def _secret_key(env: Mapping[str, str], instance_path: Path) -> tuple[str, bool]:
    """The signing key: INTAKE_SECRET_KEY, or INTAKE_SECRET_KEY_FILE.

    Without either, a random key is generated per process. Signed links then
    stop working after a restart, so the embedded default only; /healthz and
    the start-up log say so.
    """
    raw = env.get("INTAKE_SECRET_KEY", "").strip()
    key_file = env.get("INTAKE_SECRET_KEY_FILE", "").strip()
    if raw and key_file:
        raise SettingsError("INTAKE_SECRET_KEY: set either it or INTAKE_SECRET_KEY_FILE, not both")
    if key_file:
        raw = _readable_file("INTAKE_SECRET_KEY_FILE", key_file).read_text().strip()
    if raw:
        if len(raw) < 32:
            raise SettingsError("INTAKE_SECRET_KEY: must be at least 32 characters")
        return raw, False
    return secrets.token_urlsafe(48), True


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the ``INTAKE_*`` variables (default: the process environment)."""
    env = dict(os.environ if environ is None else environ)
    instance_raw = env.get("INTAKE_INSTANCE_PATH", "").strip()
    instance_path = Path(instance_raw or "instance").expanduser().resolve()
    database_url = _database_url(env, instance_path)
    broker_url = _optional_url(env, "INTAKE_BROKER_URL", BROKER_SCHEMES)
    rules_path = _rules_path(env)
    smtp_url = _optional_url(env, "INTAKE_SMTP_URL", SMTP_SCHEMES)
    imap_url = _optional_url(env, "INTAKE_IMAP_URL", IMAP_SCHEMES)
    mailboxes_file = _optional_file(env, "INTAKE_MAILBOXES_FILE")
    imap_passwords = {
        name: value for name, value in env.items()
        if (name == "INTAKE_IMAP_PASSWORD" or name.startswith("INTAKE_IMAP_PASSWORD_")) and value
    }
    oauth2_secrets = {name: value for name, value in env.items()
                      if name.startswith("INTAKE_OAUTH2_") and value}
    smtp_oauth2_file = _optional_file(env, "INTAKE_SMTP_OAUTH2_FILE")
    smtp_oauth2_user, smtp_oauth2 = _smtp_oauth2(smtp_oauth2_file, smtp_url, oauth2_secrets)
    prefix = _record_prefix(env)
    relay_domain = _relay_domain(env)
    mail_from = _mail_from(env)
    public_url = _public_url(env)
    webhook_secret = env.get("INTAKE_WEBHOOK_SECRET", "").strip()
    if webhook_secret and len(webhook_secret) < 32:
        raise SettingsError("INTAKE_WEBHOOK_SECRET: must be at least 32 characters")
    log_level = env.get("INTAKE_LOG_LEVEL", "INFO").strip().upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError("INTAKE_LOG_LEVEL: expected DEBUG, INFO, WARNING or ERROR")
    forms_path = _optional_file(env, "INTAKE_FORMS")
    records_path = _optional_file(env, "INTAKE_RECORDS")
    form_rate_limit = _form_rate_limit(env)
    allow_staff_without_totp = _flag(env, "INTAKE_ALLOW_STAFF_WITHOUT_TOTP")
    retention_path = _optional_file(env, "INTAKE_RETENTION")
    secret_key, ephemeral = _secret_key(env, instance_path)
    proxies = _trusted_proxies(env.get("INTAKE_TRUSTED_PROXIES", ""))
    timezone = _timezone(env)
    digest_recipients = _digest_recipients(env.get("INTAKE_DIGEST_RECIPIENTS", ""))
    help_path = _optional_file(env, "INTAKE_HELP")
    help_message_rate = env.get("INTAKE_HELP_MESSAGE_RATE", "").strip() or "20/minute;200/hour"
    try:
        from limits import parse_many

        parse_many(help_message_rate)
    except ValueError:
        raise SettingsError("INTAKE_HELP_MESSAGE_RATE: not a rate limit like 20/minute: "
                            f"{help_message_rate!r}") from None

    return Settings(
        instance_path=instance_path,
        database_url=database_url,
        broker_url=broker_url,
        rules_path=rules_path,
        secret_key=secret_key,
        secret_key_is_ephemeral=ephemeral,
        smtp_url=smtp_url,
        imap_url=imap_url,
        mailboxes_file=mailboxes_file,
        imap_passwords=imap_passwords,
        oauth2_secrets=oauth2_secrets,
        smtp_oauth2_file=smtp_oauth2_file,
        smtp_oauth2_user=smtp_oauth2_user,
        smtp_oauth2=smtp_oauth2,
        record_prefix=prefix,
        relay_domain=relay_domain,
        mail_from=mail_from,
        public_url=public_url,
        # Without its own secret, webhooks are signed with a key derived from the
        # secret key (documented; agencies then need that derived key to verify).
        webhook_secret=webhook_secret,
        ack_limit_per_hour=_int(env, "INTAKE_ACK_LIMIT", 5, 0),
        smtp_timeout_seconds=_float(env, "INTAKE_SMTP_TIMEOUT", 30.0, 1.0),
        redeliver_after_seconds=_float(env, "INTAKE_REDELIVER_AFTER", 60.0, 0.1),
        sweep_interval_seconds=_float(env, "INTAKE_SWEEP_INTERVAL", 15.0, 0.1),
        lease_seconds=_float(env, "INTAKE_LEASE_SECONDS", 300.0, 1.0),
        max_attempts=_int(env, "INTAKE_MAX_ATTEMPTS", 8, 1),
        retry_base_seconds=_float(env, "INTAKE_RETRY_BASE", 5.0, 0.01),
        retry_cap_seconds=_float(env, "INTAKE_RETRY_CAP", 600.0, 0.01),
        circuit_failures=_int(env, "INTAKE_CIRCUIT_FAILURES", 5, 1),
        circuit_cooldown_seconds=_float(env, "INTAKE_CIRCUIT_COOLDOWN", 30.0, 0.01),
        delivery_max_age_seconds=_float(env, "INTAKE_DELIVERY_MAX_AGE", 3 * 24 * 3600.0, 1.0),
        worker_threads=_int(env, "INTAKE_WORKER_THREADS", 4, 1),
        mail_workers=_int(env, "INTAKE_MAIL_WORKERS", os.cpu_count() or 1, 0),
        log_level=log_level,
        forms_path=forms_path,
        form_rate_limit=form_rate_limit,
        allow_staff_without_totp=allow_staff_without_totp,
        timezone=timezone,
        digest_recipients=digest_recipients,
        retention_path=retention_path,
        rate_limit_url=_rate_limit_url(env, broker_url),
        trusted_proxy_hops=proxies[0],
        trusted_proxy_networks=proxies[1],
        records_path=records_path,
        heartbeat_stale_seconds=_float(env, "INTAKE_HEARTBEAT_STALE", 60.0, 1.0),
        metrics_allow=_metrics_allow(env.get("INTAKE_METRICS_ALLOW", "")),
        metrics_token=_metrics_token(env),
        web_bind=_web_bind(env),
        web_workers=_int(env, "INTAKE_WEB_WORKERS", 2, 1),
        web_threads=_int(env, "INTAKE_WEB_THREADS", 4, 1),
        stats_flush_seconds=_float(env, "INTAKE_STATS_FLUSH_SECONDS", 60.0, 0.1),
        stats_min_cell=_int(env, "INTAKE_STATS_MIN_CELL", 10, 1),
        inbound_file=_optional_file(env, "INTAKE_INBOUND_FILE"),
        inbound_secrets={name: value for name, value in env.items()
                         if name.startswith("INTAKE_INBOUND_SECRET_") and value},
        help_path=help_path,
        help_stream_seconds=_float(env, "INTAKE_HELP_STREAM_SECONDS", 25.0, 0.5),
        help_message_rate=help_message_rate,
    )


def _web_bind(env: Mapping[str, str]) -> str:
    """INTAKE_BIND: HOST:PORT (or unix:PATH) for gunicorn."""
    raw = env.get("INTAKE_BIND", "").strip() or "127.0.0.1:8000"
    if raw.startswith("unix:"):
        return raw
    host, sep, port = raw.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"INTAKE_BIND: expected HOST:PORT or unix:PATH, got {raw!r}")
    return raw


def _metrics_allow(raw: str) -> tuple[str, ...]:
    """INTAKE_METRICS_ALLOW: addresses/CIDRs, comma-separated, that may read /metrics."""
    import ipaddress

    networks = []
    for part in raw.split(","):
        if not part.strip():
            continue
        try:
            networks.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise SettingsError("INTAKE_METRICS_ALLOW: expected addresses/CIDRs separated by "
                                f"commas, got {part.strip()!r}") from None
    return tuple(networks)


def _metrics_token(env: Mapping[str, str]) -> str:
    token = env.get("INTAKE_METRICS_TOKEN", "").strip()
    if token and len(token) < 16:
        raise SettingsError("INTAKE_METRICS_TOKEN: must be at least 16 characters")
    return token


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise SettingsError(f"{name}: expected 1 or 0")


def _database_url(env: Mapping[str, str], instance_path: Path) -> str:
    """INTAKE_DATABASE_URL (PostgreSQL through psycopg 3), else SQLite in the instance folder."""
    db_raw = env.get("INTAKE_DATABASE_URL", "").strip()
    if not db_raw:
        return f"sqlite:///{instance_path / 'intake.sqlite3'}"
    return _normalise_database_url(_check_url("INTAKE_DATABASE_URL", db_raw, DATABASE_SCHEMES))


def _optional_url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    return _check_url(name, raw, schemes) if raw else None


def _optional_file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return _readable_file(name, raw) if raw else None


def _smtp_oauth2(path: Path | None, smtp_url: str | None, secrets: Mapping[str, str]
                 ) -> tuple[str | None, OAuth2Config | None]:
    """INTAKE_SMTP_OAUTH2_FILE read and checked: (the XOAUTH2 user, the OAuth2 settings)."""
    if path is None:
        return None, None
    name = "INTAKE_SMTP_OAUTH2_FILE"
    if not smtp_url:
        raise SettingsError(f"{name}: needs INTAKE_SMTP_URL (the server)")
    parts = urlsplit(smtp_url)
    if parts.password:
        raise SettingsError(f"{name}: INTAKE_SMTP_URL has a password too; remove it")

    def read(ref: str) -> str:
        target = Path(ref).expanduser()
        return (target if target.is_absolute() else path.parent / target).read_text("utf-8")

    try:
        return parse_auth_file(path.read_text(encoding="utf-8"), name, secrets, read,
                               default_user=parts.username)
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read it: "
                            f"{exc.strerror or type(exc).__name__}") from None
    except OAuth2ConfigError as exc:
        raise SettingsError(str(exc)) from None


def _rules_path(env: Mapping[str, str]) -> Path:
    """INTAKE_RULES, else ``routing_rules.yaml`` in the working directory, else the packaged one."""
    rules_raw = env.get("INTAKE_RULES", "").strip()
    if rules_raw:
        return _readable_file("INTAKE_RULES", rules_raw)
    if Path("routing_rules.yaml").is_file():
        return Path("routing_rules.yaml").resolve()
    return packaged_rules_path()


def _record_prefix(env: Mapping[str, str]) -> str:
    prefix = env.get("INTAKE_RECORD_PREFIX", "EX").strip().upper()
    if not (1 <= len(prefix) <= 8 and prefix.isascii() and prefix.isalpha()):
        raise SettingsError("INTAKE_RECORD_PREFIX: must be 1 to 8 letters A-Z")
    return prefix


def _relay_domain(env: Mapping[str, str]) -> str:
    relay_domain = env.get("INTAKE_RELAY_DOMAIN", "relay.intake.invalid").strip().lower()
    bad_chars = any(c in relay_domain for c in "@ \r\n\t<>,;")
    if not relay_domain or bad_chars or "." not in relay_domain:
        raise SettingsError(f"INTAKE_RELAY_DOMAIN: not a domain name: {relay_domain!r}")
    return relay_domain


def _mail_from(env: Mapping[str, str]) -> str:
    mail_from = env.get("INTAKE_MAIL_FROM", "intake@intake.invalid").strip()
    if (mail_from.count("@") != 1 or any(c in mail_from for c in " \r\n\t<>,;\"")
            or not mail_from.split("@")[0] or "." not in mail_from.split("@")[1]):
        raise SettingsError(f"INTAKE_MAIL_FROM: not a plain e-mail address: {mail_from!r}")
    return mail_from


def _timezone(env: Mapping[str, str]) -> str:
    name = env.get("INTAKE_TIMEZONE", "").strip() or "America/New_York"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"INTAKE_TIMEZONE: not a known time zone ({name!r}; "
                            "e.g. America/New_York)") from None
    return name


def _public_url(env: Mapping[str, str]) -> str:
    public_url = env.get("INTAKE_PUBLIC_URL", "http://127.0.0.1:5000").strip().rstrip("/")
    if _scheme(public_url) not in ("http", "https") or not urlsplit(public_url).hostname:
        raise SettingsError(
            f"INTAKE_PUBLIC_URL: expected http(s)://host[/path], got {public_url!r}"
        )
    return public_url


def _form_rate_limit(env: Mapping[str, str]) -> str:
    """INTAKE_FORM_RATE_LIMIT in Flask-Limiter notation, checked by the ``limits`` parser."""
    form_rate_limit = env.get("INTAKE_FORM_RATE_LIMIT", "").strip() or "10/minute;100/hour"
    try:
        from limits import parse_many

        parse_many(form_rate_limit)
    except ValueError:
        raise SettingsError(
            f"INTAKE_FORM_RATE_LIMIT: not a rate limit like 10/minute;100/hour: {form_rate_limit!r}"
        ) from None
    return form_rate_limit


# -- the web edge: rate-limit storage and trusted proxies (issue 23) ---------------

RATE_LIMIT_SCHEMES = ("redis", "rediss")


def _rate_limit_url(env: Mapping[str, str], broker_url: str | None) -> str:
    """INTAKE_RATE_LIMIT_URL, else the broker's Redis, else "database"."""
    raw = env.get("INTAKE_RATE_LIMIT_URL", "").strip()
    if raw.lower() in ("database", "memory"):
        rate_limit_url = raw.lower()
    elif raw:
        rate_limit_url = _check_url("INTAKE_RATE_LIMIT_URL", raw, RATE_LIMIT_SCHEMES)
    elif broker_url is not None and _scheme(broker_url) in RATE_LIMIT_SCHEMES:
        rate_limit_url = broker_url  # the broker's Redis: every process sees it
    else:
        rate_limit_url = "database"  # the shared table: every worker process sees it
    return rate_limit_url


def _trusted_proxies(raw: str) -> tuple[int, tuple[str, ...]]:
    """A hop count (``1``: one load balancer in front) or addresses/CIDRs, comma-separated."""
    import ipaddress

    raw = raw.strip()
    if not raw or raw == "0":
        return 0, ()
    if raw.isdigit():
        hops = int(raw)
        if hops > 10:
            raise SettingsError(f"INTAKE_TRUSTED_PROXIES: at most 10 hops, got {raw}")
        return hops, ()
    networks = []
    for part in raw.split(","):
        try:
            networks.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise SettingsError(
                "INTAKE_TRUSTED_PROXIES: expected a hop count or addresses/CIDRs separated "
                f"by commas, got {part.strip()!r}") from None
    return 0, tuple(networks)


_DIGEST_AGENCY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_DIGEST_ADDRESS = re.compile(r"^[^@\s<>,;\"()\\]{1,64}@[A-Za-z0-9.-]{1,253}$")


def _digest_recipients(raw: str) -> dict[str, str]:
    """``agency=address,agency=address`` (INTAKE_DIGEST_RECIPIENTS) as a mapping."""
    recipients: dict[str, str] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        agency, sep, address = (p.strip() for p in part.partition("="))
        if not sep or not _DIGEST_AGENCY.match(agency) or not _DIGEST_ADDRESS.match(address):
            raise SettingsError(
                "INTAKE_DIGEST_RECIPIENTS: expected agency=address pairs separated by commas "
                f"(e.g. dot=chief@dot.example.gov), got {part.strip()!r}")
        if agency in recipients:
            raise SettingsError(f"INTAKE_DIGEST_RECIPIENTS: agency {agency!r} given twice")
        recipients[agency] = address
    return recipients


# Every variable this module reads, for the README table and a test that keeps them in step.
VARIABLES = (
    "INTAKE_INSTANCE_PATH", "INTAKE_DATABASE_URL", "INTAKE_BROKER_URL", "INTAKE_RULES",
    "INTAKE_SECRET_KEY", "INTAKE_SECRET_KEY_FILE", "INTAKE_SMTP_URL", "INTAKE_IMAP_URL",
    "INTAKE_MAILBOXES_FILE", "INTAKE_IMAP_PASSWORD", "INTAKE_RECORD_PREFIX", "INTAKE_RELAY_DOMAIN",
    "INTAKE_MAIL_FROM", "INTAKE_PUBLIC_URL", "INTAKE_WEBHOOK_SECRET", "INTAKE_ACK_LIMIT",
    "INTAKE_SMTP_TIMEOUT", "INTAKE_SMTP_OAUTH2_FILE",
    "INTAKE_REDELIVER_AFTER", "INTAKE_SWEEP_INTERVAL", "INTAKE_LEASE_SECONDS",
    "INTAKE_MAX_ATTEMPTS", "INTAKE_RETRY_BASE", "INTAKE_WORKER_THREADS", "INTAKE_LOG_LEVEL",
    "INTAKE_MAIL_WORKERS",
    "INTAKE_FORMS", "INTAKE_FORM_RATE_LIMIT", "INTAKE_RETENTION", "INTAKE_RECORDS",
    "INTAKE_RATE_LIMIT_URL", "INTAKE_TRUSTED_PROXIES", "INTAKE_ALLOW_STAFF_WITHOUT_TOTP",
    "INTAKE_RETRY_CAP", "INTAKE_CIRCUIT_FAILURES", "INTAKE_CIRCUIT_COOLDOWN",
    "INTAKE_DELIVERY_MAX_AGE", "INTAKE_TIMEZONE",
    "INTAKE_HEARTBEAT_STALE", "INTAKE_METRICS_ALLOW", "INTAKE_METRICS_TOKEN",
    "INTAKE_BIND", "INTAKE_WEB_WORKERS", "INTAKE_WEB_THREADS",
    "INTAKE_DIGEST_RECIPIENTS", "INTAKE_INBOUND_FILE",
    "INTAKE_STATS_FLUSH_SECONDS", "INTAKE_STATS_MIN_CELL",
    "INTAKE_HELP", "INTAKE_HELP_STREAM_SECONDS", "INTAKE_HELP_MESSAGE_RATE",
)


ORIGINALS_KEY_FILE = "originals.key"


@lru_cache(maxsize=64)
def _hkdf(secret_key: str, purpose: str) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None,
                info=f"intake {purpose}".encode()).derive(secret_key.encode())


@lru_cache(maxsize=64)
def _instance_key(path: Path) -> bytes:
    """The 32-byte key in ``path``, made (mode 0600) if there is none yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under another name, then linked in: a process starting at the same
        # moment either makes the key or reads the complete one the other made.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        try:
            with suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink()
    key = path.read_bytes()
    if len(key) != 32:
        raise SettingsError(f"{path}: not a 32-byte key (originals key file)")
    return key


@lru_cache(maxsize=64)
def _derive_key(secret_key: str, purpose: str) -> bytes:
    # Cached: the form pages derive their keys on every request.
    return hmac.new(secret_key.encode(), f"intake {purpose}".encode(), hashlib.sha256).digest()
