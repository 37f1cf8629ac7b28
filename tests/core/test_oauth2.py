"""The ``oauth2:`` section (mailboxes file, INTAKE_SMTP_OAUTH2_FILE): presets, defaults,
secrets only from files or INTAKE_OAUTH2_* variables, and refusals in plain words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from intake.core.oauth2 import (
    GOOGLE_TOKEN_URL,
    OAuth2Config,
    OAuth2ConfigError,
    explain_refusal,
    parse_auth,
    parse_oauth2,
    xoauth2,
)
from intake.mail.config import MailboxConfigError, parse_mailboxes

TENANT = "0d7c3a5e-1111-4222-8333-944445555666"
ENV = {"INTAKE_OAUTH2_M365": "s3cr3t-value-from-env", "INTAKE_OAUTH2_RT": "1//refresh-tok"}


def files(name: str) -> str:
    if name == "missing.secret":
        raise FileNotFoundError(2, "No such file or directory")
    return {"m365.secret": "file-secret-value\n", "empty.secret": "  \n"}[name]


def parse(section: dict[str, Any]) -> OAuth2Config:
    return parse_oauth2(section, "mailbox 'm'", ENV, files)


def test_microsoft_preset_builds_the_tenant_token_url_and_the_default_scope() -> None:
    config = parse({"provider": "microsoft", "tenant": TENANT, "client_id": "app",
                    "client_secret_env": "INTAKE_OAUTH2_M365"})
    assert config.token_url == (f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/"
                                "token")
    assert config.scope == "https://outlook.office365.com/.default"
    assert config.grant == "client_credentials"
    assert config.client_secret == "s3cr3t-value-from-env"
    assert config.secret_source == "client_secret_env INTAKE_OAUTH2_M365"
    assert "s3cr3t" not in repr(config)


def test_google_preset_with_a_refresh_token_from_a_file_and_an_env() -> None:
    config = parse({"provider": "google", "client_id": "123.apps.googleusercontent.com",
                    "client_secret_file": "m365.secret", "grant": "refresh_token",
                    "refresh_token_env": "INTAKE_OAUTH2_RT"})
    assert (config.token_url, config.scope) == (GOOGLE_TOKEN_URL, "https://mail.google.com/")
    assert config.client_secret == "file-secret-value"
    assert config.refresh_token == "1//refresh-tok"
    assert "refresh-tok" not in repr(config) and "file-secret" not in repr(config)


def test_explicit_token_url_needs_a_scope_and_https_except_on_loopback() -> None:
    base = {"client_id": "a", "client_secret_env": "INTAKE_OAUTH2_M365"}
    assert parse({**base, "token_url": "https://idp.example.gov/token",
                  "scope": "mail"}).token_url == "https://idp.example.gov/token"
    assert parse({**base, "token_url": "http://127.0.0.1:8080/token", "scope": "m"})
    with pytest.raises(OAuth2ConfigError, match="scope is required"):
        parse({**base, "token_url": "https://idp.example.gov/token"})
    with pytest.raises(OAuth2ConfigError, match="must be https"):
        parse({**base, "token_url": "http://idp.example.gov/token", "scope": "m"})
    with pytest.raises(OAuth2ConfigError, match="http\\(s\\) URL"):
        parse({**base, "token_url": "file:///etc/passwd", "scope": "m"})


@pytest.mark.parametrize("key", ["client_secret", "refresh_token", "access_token", "secret",
                                 "password"])
def test_a_secret_written_in_the_yaml_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(OAuth2ConfigError) as caught:
        parse({"provider": "google", "client_id": "a", key: "PLANTED-SECRET-123"})
    message = str(caught.value)
    assert "must never be written in the file" in message
    assert "PLANTED-SECRET-123" not in message
    assert "\n" not in message


@pytest.mark.parametrize(("section", "expected"), [
    ({"provider": "microsoft", "client_id": "a", "client_secret_env": "INTAKE_OAUTH2_M365"},
     "'tenant' is required"),
    ({"provider": "microsoft", "tenant": "../evil", "client_id": "a",
      "client_secret_env": "INTAKE_OAUTH2_M365"}, "tenant must be"),
    ({"provider": "yahoo", "client_id": "a"}, "provider must be microsoft or google"),
    ({"provider": "google", "client_id": "a"}, "exactly one of client_secret_file"),
    ({"provider": "google", "client_id": "a", "client_secret_env": "HOME"},
     "must name an INTAKE_OAUTH2_"),
    ({"provider": "google", "client_id": "a", "client_secret_env": "INTAKE_OAUTH2_UNSET"},
     "INTAKE_OAUTH2_UNSET is not set"),
    ({"provider": "google", "client_id": "a", "client_secret_file": "missing.secret"},
     "cannot read client_secret_file: No such file"),
    ({"provider": "google", "client_id": "a", "client_secret_file": "empty.secret"},
     "client_secret_file is empty"),
    ({"provider": "google", "client_id": "a", "client_secret_env": "INTAKE_OAUTH2_M365",
      "grant": "refresh_token"}, "exactly one of refresh_token_file"),
    ({"provider": "google", "client_id": "a", "client_secret_env": "INTAKE_OAUTH2_M365",
      "grant": "password"}, "grant must be"),
    ({"provider": "google", "client_secret_env": "INTAKE_OAUTH2_M365"},
     "'client_id' is required"),
    ({"provider": "google", "client_id": "a", "client_secret_env": "INTAKE_OAUTH2_M365",
      "tenant": "x"}, "tenant is for provider: microsoft"),
    ({"provider": "google", "token_url": "https://x/t", "client_id": "a",
      "client_secret_env": "INTAKE_OAUTH2_M365"}, "not both"),
    ({"provider": "google", "client_id": "a", "client_secret_env": "INTAKE_OAUTH2_M365",
      "colour": "red"}, "unknown key"),
])
def test_bad_sections_are_one_clear_line(section: dict[str, Any], expected: str) -> None:
    with pytest.raises(OAuth2ConfigError, match=expected) as caught:
        parse(section)
    assert "\n" not in str(caught.value)


def test_auth_password_is_the_default_and_oauth2_needs_its_section() -> None:
    assert parse_auth({}, "m", ENV, files) is None
    with pytest.raises(OAuth2ConfigError, match="needs an oauth2: section"):
        parse_auth({"auth": "oauth2"}, "m", ENV, files)
    with pytest.raises(OAuth2ConfigError, match="needs auth: oauth2"):
        parse_auth({"oauth2": {}}, "m", ENV, files)
    with pytest.raises(OAuth2ConfigError, match="auth must be"):
        parse_auth({"auth": "kerberos"}, "m", ENV, files)


def test_mailboxes_file_takes_oauth2_mailboxes_and_refuses_a_password_beside() -> None:
    text = f"""
mailboxes:
  - name: m365
    host: outlook.office365.com
    user: intake@agency.example.gov
    auth: oauth2
    oauth2:
      provider: microsoft
      tenant: {TENANT}
      client_id: app
      client_secret_env: INTAKE_OAUTH2_M365
"""
    [box] = parse_mailboxes(text, ENV, files)
    assert box.oauth2 is not None and box.password == ""
    assert box.oauth2.client_secret == "s3cr3t-value-from-env"
    assert "s3cr3t" not in repr(box)
    with pytest.raises(MailboxConfigError, match="auth: oauth2 takes no password"):
        parse_mailboxes(text + "    password_env: INTAKE_IMAP_PASSWORD_X\n", ENV, files)
    planted = text.replace("client_secret_env: INTAKE_OAUTH2_M365",
                           "client_secret: PLANTED-IN-YAML")
    with pytest.raises(MailboxConfigError) as caught:
        parse_mailboxes(planted, ENV, files)
    assert "PLANTED-IN-YAML" not in str(caught.value)


def test_xoauth2_string_is_the_documented_sasl_format() -> None:
    assert xoauth2("u@x.gov", "tok") == "user=u@x.gov\x01auth=Bearer tok\x01\x01"
    with pytest.raises(ValueError, match="control character"):
        xoauth2("u@x.gov\x01auth=Bearer forged", "tok")


def test_a_hostile_endpoint_description_cannot_forge_lines_or_turn_text() -> None:
    config = parse({"provider": "google", "client_id": "a",
                    "client_secret_env": "INTAKE_OAUTH2_M365"})
    line = explain_refusal(config, "invalid\x1b[2Jclient",
                           "bad\r\nINFO forged\u202eevil\x07 s3cr3t-value-from-env")
    assert line.isprintable()
    assert "s3cr3t-value-from-env" not in line


def test_refusals_in_plain_words_without_the_secret() -> None:
    config = parse({"provider": "microsoft", "tenant": TENANT, "client_id": "app",
                    "client_secret_env": "INTAKE_OAUTH2_M365"})
    line = explain_refusal(config, "invalid_client",
                           "AADSTS7000215: Invalid client secret provided. Trace ID: 1")
    assert line == ("AADSTS7000215: invalid client secret — check client_secret_env "
                    "INTAKE_OAUTH2_M365")
    echoed = explain_refusal(config, "invalid_request",
                             "bad secret s3cr3t-value-from-env\nforged line")
    assert "s3cr3t-value-from-env" not in echoed and "\n" not in echoed
    assert explain_refusal(config, "invalid_scope", "").startswith(
        "invalid_scope: the scope was refused")


def test_the_smtp_file_is_checked_at_start_up_and_read_relative_to_itself(
        tmp_path: Path) -> None:
    from intake.settings import SettingsError, load_settings

    (tmp_path / "smtp.secret").write_text("from-a-file\n")
    path = tmp_path / "smtp.yaml"
    path.write_text("user: intake@agency.example.gov\nauth: oauth2\noauth2:\n"
                    "  provider: google\n  client_id: a\n  client_secret_file: smtp.secret\n"
                    "  grant: refresh_token\n  refresh_token_env: INTAKE_OAUTH2_RT\n")
    env = {"INTAKE_SMTP_URL": "smtp+starttls://smtp.gmail.com",
           "INTAKE_SMTP_OAUTH2_FILE": str(path), **ENV}
    settings = load_settings(env)
    assert settings.smtp_oauth2 is not None
    assert settings.smtp_oauth2.client_secret == "from-a-file"
    assert settings.smtp_oauth2.refresh_token == "1//refresh-tok"
    assert settings.smtp_oauth2_user == "intake@agency.example.gov"
    assert "from-a-file" not in repr(settings) and "refresh-tok" not in repr(settings)
    with pytest.raises(SettingsError, match="has a password too"):
        load_settings({**env, "INTAKE_SMTP_URL": "smtp://u:p@host"})
    with pytest.raises(SettingsError, match="needs INTAKE_SMTP_URL"):
        load_settings({k: v for k, v in env.items() if k != "INTAKE_SMTP_URL"})
    path.write_text("user: x\nauth: oauth2\noauth2: {provider: google, client_id: a, "
                    "client_secret: PLANTED}\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value).startswith("INTAKE_SMTP_OAUTH2_FILE: oauth2: a secret")
    assert "PLANTED" not in str(caught.value)
