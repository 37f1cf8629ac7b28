"""Settings: embedded defaults, and one-line errors naming the variable."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from intake import settings as settings_module
from intake.settings import SettingsError, load_settings


def test_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no routing_rules.yaml here: the packaged one is used
    s = load_settings({})
    assert s.database_url == f"sqlite:///{tmp_path / 'instance' / 'intake.sqlite3'}"
    assert s.broker_url is None and s.broker_kind == "embedded"
    assert s.rules_path == settings_module.packaged_rules_path()
    assert s.secret_key_is_ephemeral and len(s.secret_key) >= 32


def test_rules_file_in_working_directory_wins(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "routing_rules.yaml").write_text("version: 1\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings({}).rules_path == tmp_path / "routing_rules.yaml"


def test_settings_are_frozen() -> None:
    s = load_settings({})
    with pytest.raises(AttributeError):
        s.database_url = "sqlite://"  # type: ignore[misc]


def test_postgres_urls_use_psycopg() -> None:
    s = load_settings({"INTAKE_DATABASE_URL": "postgres://u@db/intake"})
    assert s.database_url == "postgresql+psycopg://u@db/intake"
    assert s.database_kind == "postgresql"


@pytest.mark.parametrize(("env", "expected"), [
    ({"INTAKE_DATABASE_URL": "mysql://x/y"}, "INTAKE_DATABASE_URL: unknown URL scheme 'mysql'"),
    ({"INTAKE_DATABASE_URL": "just-a-path"}, "INTAKE_DATABASE_URL: unknown URL scheme '(none)'"),
    ({"INTAKE_BROKER_URL": "kafka://x"}, "INTAKE_BROKER_URL: unknown URL scheme 'kafka'"),
    ({"INTAKE_SMTP_URL": "http://x"}, "INTAKE_SMTP_URL: unknown URL scheme 'http'"),
    ({"INTAKE_IMAP_URL": "pop3://x"}, "INTAKE_IMAP_URL: unknown URL scheme 'pop3'"),
    ({"INTAKE_RULES": "/nonexistent/rules.yaml"}, "INTAKE_RULES: file not found"),
    ({"INTAKE_SECRET_KEY": "short"}, "INTAKE_SECRET_KEY: must be at least 32"),
    ({"INTAKE_MAX_ATTEMPTS": "many"}, "INTAKE_MAX_ATTEMPTS: 'many' is not a whole number"),
    ({"INTAKE_SWEEP_INTERVAL": "0"}, "INTAKE_SWEEP_INTERVAL: must be at least"),
    ({"INTAKE_RELAY_DOMAIN": "evil\r\nbcc"}, "INTAKE_RELAY_DOMAIN: not a domain name"),
    ({"INTAKE_RECORD_PREFIX": "E1"}, "INTAKE_RECORD_PREFIX: must be 1 to 8 letters"),
])
def test_bad_values_name_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def _unreadable_file(tmp_path: Path) -> Path:
    """A real file that exists but cannot be read, for any user.

    Mode 0 stops ordinary users; root reads through it, so as root use
    /proc/self/mem, a regular file whose first byte is never readable.
    """
    if os.geteuid() != 0:
        path = tmp_path / "rules.yaml"
        path.write_text("version: 1\n")
        path.chmod(0)
        return path
    return Path("/proc/self/mem")


def test_unreadable_rules_file(tmp_path: Path) -> None:
    path = _unreadable_file(tmp_path)
    with pytest.raises(SettingsError, match="INTAKE_RULES: cannot read"):
        load_settings({"INTAKE_RULES": str(path)})


def test_only_the_settings_module_reads_intake_variables() -> None:
    root = Path(settings_module.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "settings.py" and path.parent == root:
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"os\.environ|getenv\(|environ\[", text):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_readme_documents_every_variable() -> None:
    readme = (Path(settings_module.__file__).parent.parent / "README.md").read_text()
    missing = [name for name in settings_module.VARIABLES if f"`{name}`" not in readme]
    assert missing == []


def test_every_variable_read_is_listed() -> None:
    source = Path(settings_module.__file__).read_text(encoding="utf-8")
    read = set(re.findall(r'"(INTAKE_[A-Z0-9_]+[A-Z0-9])"', source))
    assert read - set(settings_module.VARIABLES) == set()


def test_derived_keys_differ_per_purpose_and_from_the_secret() -> None:
    s = load_settings({"INTAKE_SECRET_KEY": "k" * 40})
    keys = {p: s.derived_key(p) for p in ("pii finding hashes", "form token",
                                          "rate-limit keys", "webhook signatures")}
    assert len(set(keys.values())) == 4
    assert all(key != s.secret_key.encode() and len(key) == 32 for key in keys.values())
    assert s.derived_key("form token") == load_settings(
        {"INTAKE_SECRET_KEY": "k" * 40}).derived_key("form token")  # stable across restarts


def test_derived_keys_differ_by_purpose_and_secret(tmp_path: Path) -> None:
    a = load_settings({"INTAKE_SECRET_KEY": "a" * 40, "INTAKE_INSTANCE_PATH": str(tmp_path)})
    b = load_settings({"INTAKE_SECRET_KEY": "b" * 40, "INTAKE_INSTANCE_PATH": str(tmp_path)})
    assert a.derived_key("form token") == a.derived_key("form token")
    assert a.derived_key("form token") != a.derived_key("rate-limit keys")
    assert a.derived_key("form token") != b.derived_key("form token")
    assert a.secret_key.encode() not in a.derived_key("form token")


def test_session_signer_is_built_once_and_follows_the_secret_key() -> None:
    from flask import Flask

    from intake.web.security import SigningOnceSessions

    app = Flask("t")
    app.secret_key = "first-secret"
    sessions = SigningOnceSessions()
    first = sessions.get_signing_serializer(app)
    assert first is not None and sessions.get_signing_serializer(app) is first
    token = first.dumps({"csrf": "x"})
    app.secret_key = "second-secret"
    second = sessions.get_signing_serializer(app)
    assert second is not first
    import itsdangerous
    with pytest.raises(itsdangerous.BadSignature):
        second.loads(token)  # a cookie signed with the old key is refused
