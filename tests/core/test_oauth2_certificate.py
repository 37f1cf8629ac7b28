"""Certificate credentials in the ``oauth2:`` section: the key and certificate only from
files or an INTAKE_OAUTH2_* variable, exactly one of secret and certificate, the
thumbprints Microsoft Entra looks the key up by, and refusals that never show the key."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from intake.core.oauth2 import OAuth2Config, OAuth2ConfigError, explain_refusal, parse_oauth2
from intake.mail.config import MailboxConfigError, parse_mailboxes
from tests.oauth2_server import make_certificate, thumbprints

TENANT = "0d7c3a5e-1111-4222-8333-944445555666"
KEY, CERT = make_certificate()
OTHER_KEY, OTHER_CERT = make_certificate("another app")
BASE = {"provider": "microsoft", "tenant": TENANT, "client_id": "app"}


def body_lines(pem: bytes) -> list[str]:
    """The base64 lines of a PEM block: key material that must never be shown."""
    return [line for line in pem.decode().splitlines() if not line.startswith("-----")]


def parse(section: dict[str, Any], files: dict[str, bytes] | None = None,
          env: dict[str, str] | None = None) -> OAuth2Config:
    stored = files or {}

    def read(name: str) -> str:
        if name not in stored:
            raise FileNotFoundError(2, "No such file or directory")
        return stored[name].decode()

    merged = {k: v for k, v in {**BASE, **section}.items() if v is not None}  # None: left out
    return parse_oauth2(merged, "mailbox 'm'", env or {}, read)


def refusal(section: dict[str, Any], files: dict[str, bytes] | None = None,
            env: dict[str, str] | None = None) -> str:
    with pytest.raises(OAuth2ConfigError) as caught:
        parse(section, files, env)
    text = str(caught.value)
    assert "\n" not in text
    for line in body_lines(KEY) + body_lines(OTHER_KEY):
        assert line not in text, "key material in an error"
    return text


def expected_x5t(cert_pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - the x5t thumbprint is SHA-1
    digest.update(der)
    return base64.urlsafe_b64encode(digest.finalize()).rstrip(b"=").decode()


@pytest.mark.parametrize("bundle", [KEY + CERT, CERT + KEY], ids=["key-first", "cert-first"])
def test_one_pem_file_with_the_key_and_the_certificate(bundle: bytes) -> None:
    config = parse({"client_certificate_file": "/etc/intake/m365.pem"},
                   {"/etc/intake/m365.pem": bundle})
    assert config.certificate is not None and not config.client_secret
    assert config.certificate.x5t == expected_x5t(CERT) == thumbprints(CERT)[0]
    assert config.certificate.x5t_s256 == thumbprints(CERT)[1]
    assert len(config.certificate.x5t) == 27  # 20 bytes, base64url without padding
    assert config.certificate.headers == {"x5t": config.certificate.x5t,
                                          "x5t#S256": config.certificate.x5t_s256}
    assert config.secret_source == "client_certificate_file /etc/intake/m365.pem"
    for line in body_lines(KEY):
        assert line not in repr(config)
        assert line not in repr(config.certificate)
    # What scrubbing removes: the key and every line of it.
    assert config.certificate.private_key in config.secrets
    assert set(body_lines(KEY)) - {line for line in body_lines(KEY) if len(line) < 16} <= set(
        config.secrets)


def test_key_and_certificate_in_two_files_and_in_a_variable() -> None:
    apart = parse({"client_certificate_file": "app.crt", "client_key_file": "app.key"},
                  {"app.crt": CERT, "app.key": KEY})
    assert apart.certificate is not None and apart.certificate.x5t == thumbprints(CERT)[0]
    assert apart.secret_source == "client_certificate_file app.crt and client_key_file app.key"
    from_env = parse({"client_certificate_env": "INTAKE_OAUTH2_M365_CERT"},
                     env={"INTAKE_OAUTH2_M365_CERT": (CERT + KEY).decode()})
    assert from_env.certificate == apart.certificate
    # A variable written with literal "\n" (systemd Environment=, a .env file) works too.
    one_line = (CERT + KEY).decode().replace("\n", "\\n")
    assert parse({"client_certificate_env": "INTAKE_OAUTH2_M365_CERT"},
                 env={"INTAKE_OAUTH2_M365_CERT": one_line}).certificate == apart.certificate


@pytest.mark.parametrize("key", ["client_certificate", "client_key", "private_key",
                                 "certificate"])
def test_a_key_or_certificate_written_in_the_yaml_is_refused(key: str) -> None:
    text = refusal({key: (KEY + CERT).decode()})
    assert f"a secret ('{key}') must never be written in the file" in text
    assert "client_certificate_file" in text and "client_certificate_env" in text


def test_exactly_one_of_secret_and_certificate() -> None:
    both = refusal({"client_secret_env": "INTAKE_OAUTH2_S",
                    "client_certificate_file": "a.pem"},
                   {"a.pem": KEY + CERT}, {"INTAKE_OAUTH2_S": "x" * 20})
    assert "a client secret or a client certificate, not both" in both
    assert "exactly one of client_secret_file, client_secret_env" in refusal({})
    assert "exactly one of client_certificate_file, client_certificate_env" in refusal(
        {"client_certificate_file": "a.pem", "client_certificate_env": "INTAKE_OAUTH2_C"},
        {"a.pem": KEY + CERT}, {"INTAKE_OAUTH2_C": (KEY + CERT).decode()})
    assert "client_key_file goes with client_certificate_file" in refusal(
        {"client_key_file": "a.key", "client_secret_env": "INTAKE_OAUTH2_S"},
        {"a.key": KEY}, {"INTAKE_OAUTH2_S": "x" * 20})
    assert "client_key_file goes with client_certificate_file" in refusal(
        {"client_key_file": "a.key", "client_certificate_env": "INTAKE_OAUTH2_C"},
        {"a.key": KEY}, {"INTAKE_OAUTH2_C": CERT.decode()})
    assert "provider: google takes a client secret" in refusal(
        {"provider": "google", "tenant": None, "client_certificate_file": "a.pem"},
        {"a.pem": KEY + CERT})
    assert "must name an INTAKE_OAUTH2_* variable" in refusal(
        {"client_certificate_env": "HOME"})
    assert "INTAKE_OAUTH2_NOPE is not set" in refusal(
        {"client_certificate_env": "INTAKE_OAUTH2_NOPE"})
    assert "cannot read client_certificate_file: No such file or directory" in refusal(
        {"client_certificate_file": "missing.pem"})


def _expired() -> tuple[bytes, bytes]:
    return make_certificate(days=-1, not_before_days=30)


def _ec_bundle() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "ec")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
            + cert.public_bytes(serialization.Encoding.PEM))


def _encrypted() -> bytes:
    key = serialization.load_pem_private_key(KEY, password=None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(b"passphrase")) + CERT


@pytest.mark.parametrize(("bundle", "words"), [
    (CERT, "expected one PEM private key"),
    (KEY, "expected a PEM certificate (BEGIN CERTIFICATE), found none"),
    (KEY + OTHER_KEY + CERT, "expected one PEM private key (BEGIN PRIVATE KEY or BEGIN RSA "
                             "PRIVATE KEY), found 2"),
    (OTHER_KEY + CERT, "the private key does not belong to the (first) certificate"),
    (b"not a pem at all\n", "expected one PEM private key"),
    (KEY.replace(b"M", b"*", 3) + CERT, "the private key cannot be read (not a valid PEM key)"),
    (KEY + CERT.replace(b"M", b"*", 3), "the certificate cannot be read"),
], ids=["no-key", "no-cert", "two-keys", "wrong-pair", "garbage", "bad-key", "bad-cert"])
def test_bundles_that_cannot_work_are_refused_in_plain_words(bundle: bytes, words: str) -> None:
    text = refusal({"client_certificate_file": "a.pem"}, {"a.pem": bundle})
    assert words in text
    assert text.startswith("mailbox 'm': client_certificate_file a.pem: ")


def test_an_encrypted_an_ec_and_an_expired_key_are_refused() -> None:
    assert "the private key is encrypted; give it unencrypted in a file of mode 0600" in (
        refusal({"client_certificate_file": "a.pem"}, {"a.pem": _encrypted()}))
    assert "the private key must be RSA" in refusal({"client_certificate_file": "a.pem"},
                                                    {"a.pem": _ec_bundle()})
    key, cert = _expired()
    assert "the certificate expired on " in refusal({"client_certificate_file": "a.pem"},
                                                    {"a.pem": key + cert})


def test_the_mailboxes_file_takes_certificate_credentials(tmp_path: Path) -> None:
    pem = tmp_path / "m365.pem"
    pem.write_bytes(KEY + CERT)
    text = f"""
mailboxes:
  - name: m365
    host: outlook.office365.com
    user: info@agency.example.gov
    auth: oauth2
    oauth2:
      provider: microsoft
      tenant: {TENANT}
      client_id: 8f1e
      client_certificate_file: {pem}
"""
    (box,) = parse_mailboxes(text, read_file=lambda p: Path(p).read_text())
    assert box.oauth2 is not None and box.oauth2.certificate is not None
    assert box.oauth2.certificate.x5t == thumbprints(CERT)[0]
    inline = text.replace(f"client_certificate_file: {pem}",
                          "client_certificate: |\n        " + "\n        ".join(
                              (KEY + CERT).decode().splitlines()))
    with pytest.raises(MailboxConfigError) as caught:
        parse_mailboxes(inline, read_file=lambda p: Path(p).read_text())
    assert "must never be written in the file" in str(caught.value)
    for line in body_lines(KEY):
        assert line not in str(caught.value)


def test_a_refused_assertion_is_explained_with_what_to_check() -> None:
    config = parse({"client_certificate_file": "a.pem"}, {"a.pem": KEY + CERT})
    line = explain_refusal(config, "invalid_client",
                           "AADSTS700027: Client assertion contains an invalid signature. "
                           "[Reason - The key was not found.]")
    assert line.startswith("AADSTS700027: the client assertion's signature was refused: the "
                           "certificate is not the one uploaded to the app registration")
    assert line.endswith("check client_certificate_file a.pem")
    # A hostile endpoint echoing the key back gets it removed.
    echoed = explain_refusal(config, "invalid_client", "bad key " + body_lines(KEY)[3])
    assert body_lines(KEY)[3] not in echoed and "[redacted]" in echoed
