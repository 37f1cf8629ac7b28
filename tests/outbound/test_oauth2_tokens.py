"""The token cache (intake.outbound.oauth2) against the local OAuth2 server: per
(token URL, client, scope, grant), refreshed before expiry, forgotten on refusal,
refusals and outages as one plain line without secrets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from intake.core.oauth2 import OAuth2Config
from intake.outbound.oauth2 import OAuth2Error, TokenCache, with_token
from tests.conftest import free_port
from tests.oauth2_server import OAuth2TestServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def authority() -> Iterator[OAuth2TestServer]:
    server = OAuth2TestServer(lifetime=600)
    yield server
    server.close()


def config(authority: OAuth2TestServer, client_id: str, secret: str, **changes: str
           ) -> OAuth2Config:
    values = {"token_url": authority.token_url, "client_id": client_id, "scope": "mail",
              "client_secret": secret, "secret_source": "client_secret_file app.secret",
              **changes}
    return OAuth2Config(**values)  # type: ignore[arg-type]


def test_a_token_is_reused_until_skew_before_expiry_then_fetched_again(
        authority: OAuth2TestServer) -> None:
    clock = Clock()
    tokens = TokenCache(clock=clock, skew=60)
    cfg = config(authority, "app", authority.add_client("app", "u@x.gov"))
    first = tokens.get(cfg)
    clock.now += 539  # 61 s left: still good
    assert tokens.get(cfg) == first
    clock.now += 2  # 59 s left: inside the skew
    second = tokens.get(cfg)
    assert second != first and tokens.fetches == 2
    assert authority.validate("u@x.gov", second)


def test_the_cache_key_is_url_client_scope_and_grant(authority: OAuth2TestServer) -> None:
    tokens = TokenCache()
    secret = authority.add_client("app", "u@x.gov")
    a = tokens.get(config(authority, "app", secret))
    b = tokens.get(config(authority, "app", secret, scope="other"))
    assert a != b and tokens.fetches == 2
    assert tokens.get(config(authority, "app", secret)) == a


def test_invalidate_forgets_only_the_refused_token(authority: OAuth2TestServer) -> None:
    tokens = TokenCache()
    cfg = config(authority, "app", authority.add_client("app", "u@x.gov"))
    first = tokens.get(cfg)
    tokens.invalidate(cfg, "some-older-token")  # another thread's stale refusal
    assert tokens.get(cfg) == first
    tokens.invalidate(cfg, first)
    assert tokens.get(cfg) != first


def test_refresh_token_grant(authority: OAuth2TestServer) -> None:
    secret = authority.add_client("google-app", "u@x.gov")
    refresh = authority.add_refresh_token("google-app")
    cfg = config(authority, "google-app", secret, grant="refresh_token",
                 refresh_token=refresh)
    token = TokenCache().get(cfg)
    assert authority.validate("u@x.gov", token)
    assert authority.requests[-1]["grant_type"] == "refresh_token"
    bad = config(authority, "google-app", secret, grant="refresh_token",
                 refresh_token="rt-revoked-long-enough")
    with pytest.raises(OAuth2Error) as caught:
        TokenCache().get(bad)
    assert "invalid_grant" in str(caught.value)
    assert "check the refresh token" in str(caught.value)
    assert "rt-revoked-long-enough" not in str(caught.value)


def test_with_token_retries_once_with_a_new_token(authority: OAuth2TestServer) -> None:
    tokens = TokenCache()
    cfg = config(authority, "app", authority.add_client("app", "u@x.gov"))
    seen: list[str] = []

    def login(token: str) -> None:
        seen.append(token)
        if not authority.validate("u@x.gov", token):
            raise PermissionError("refused")

    assert with_token(cfg, login, (PermissionError,), tokens) is False
    authority.expire_all()
    assert with_token(cfg, login, (PermissionError,), tokens) is True
    assert len(seen) == 3 and seen[1] == seen[0] and seen[2] != seen[1]
    authority.revoke_client("app")
    with pytest.raises(OAuth2Error, match="revoked"):
        with_token(cfg, login, (PermissionError,), tokens)


def test_wrong_secret_unreachable_endpoint_and_no_secret_in_the_error(
        authority: OAuth2TestServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    authority.add_client("app", "u@x.gov")
    with pytest.raises(OAuth2Error) as caught:
        TokenCache().get(config(authority, "app", "wrong-secret-planted"))
    assert caught.value.refused
    assert str(caught.value) == (f"the token endpoint 127.0.0.1:{authority.port} refused: "
                                 "AADSTS7000215: invalid client secret — check "
                                 "client_secret_file app.secret")
    port = free_port()  # nothing listens there
    down = config(authority, "app", "wrong-secret-planted",
                  token_url=f"http://127.0.0.1:{port}/token")
    with pytest.raises(OAuth2Error) as caught:
        TokenCache(timeout=5).get(down)
    assert not caught.value.refused
    assert str(caught.value).startswith(f"could not reach the token endpoint 127.0.0.1:{port}")
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "wrong-secret-planted" not in logs
    assert "wrong-secret-planted" not in repr(caught.value)
