from __future__ import annotations

import re

import pytest

from intake.core.relay import (
    find_relay_tokens,
    new_relay_token,
    parse_relay_address,
    relay_address,
)

DOMAIN = "intake.state.gov"


def test_token_shape_and_entropy() -> None:
    tokens = {new_relay_token() for _ in range(200)}
    assert len(tokens) == 200
    for t in tokens:
        assert re.fullmatch(r"[a-z2-7]{32}", t)  # 160 bits, no "=" padding
        assert len(t) * 5 >= 128


def test_round_trip() -> None:
    token = new_relay_token()
    addr = relay_address(token, DOMAIN)
    assert addr == f"reply+{token}@{DOMAIN}"
    assert parse_relay_address(addr, DOMAIN) == token
    assert parse_relay_address(f'"Agency A" <{addr}>', DOMAIN) == token
    assert parse_relay_address(f"<{addr.upper()}>", DOMAIN) == token  # case-folded on the way
    assert parse_relay_address(f"  {addr} (via relay) ", DOMAIN) == token
    assert parse_relay_address(addr, DOMAIN.upper()) == token


def test_custom_prefix() -> None:
    token = new_relay_token()
    addr = relay_address(token, DOMAIN, local_prefix="case")
    assert addr.startswith("case+")
    assert parse_relay_address(addr, DOMAIN, local_prefix="case") == token
    assert parse_relay_address(addr, DOMAIN) is None


@pytest.mark.parametrize(
    "address",
    [
        "reply+{t}@evil.example",
        "reply+{t}@intake.state.gov.evil.example",
        "reply+{t}@sub.intake.state.gov",
        "other+{t}@intake.state.gov",
        "reply{t}@intake.state.gov",
        "reply+{t}@@intake.state.gov",
        "reply+@intake.state.gov",
        "reply+short@intake.state.gov",
        "reply+{t}!@intake.state.gov",
        "reply+{t}@intake.state.gov\r\nBcc: x@y",
        '"reply+{t}@intake.state.gov" <attacker@evil.example>',
        "",
    ],
)
def test_foreign_or_malformed_addresses_are_not_ours(address: str) -> None:
    assert parse_relay_address(address.format(t=new_relay_token()), DOMAIN) is None


def test_non_string_address_is_not_ours() -> None:
    assert parse_relay_address(None, DOMAIN) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "domain",
    [
        "intake.state.gov\r\nBcc: victim@example.org",
        "intake.state.gov\n",
        "evil@intake.state.gov",
        "intake state.gov",
        " intake.state.gov",
        "",
        "localhost",
        "-bad.gov",
        "intake..gov",
        "intake.state.gov.",
        "intake.state.gov>",
    ],
)
def test_bad_domain_rejected(domain: str) -> None:
    with pytest.raises(ValueError):
        relay_address(new_relay_token(), domain)
    with pytest.raises(ValueError):
        parse_relay_address("reply+x@intake.state.gov", domain)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",  # too short to carry 128 bits
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
        "abcdefghijklmnopqrstuvwxyz234567\r\nBcc: x@y",
        "abcdefghijklmnopqrstuvwxyz2345@7",
        "abcdefghijklmnopqrstuvwxyz234561",  # '1' is not base32
        "abcdefghijklmnopqrstuvwxyz23456 ",
        "abcdefghijklmnopqrstuvwxyz234567====",
    ],
)
def test_bad_token_rejected(token: str) -> None:
    with pytest.raises(ValueError):
        relay_address(token, DOMAIN)


@pytest.mark.parametrize("prefix", ["", "re ply", "re+ply", "a@b", "reply\n"])
def test_bad_prefix_rejected(prefix: str) -> None:
    with pytest.raises(ValueError):
        relay_address(new_relay_token(), DOMAIN, local_prefix=prefix)


def test_find_relay_tokens() -> None:
    t1, t2 = new_relay_token(), new_relay_token()
    headers = [
        f'"Smith, Ann" <ann@example.org>, Agency <reply+{t1}@{DOMAIN}>',
        f"reply+{t2}@{DOMAIN.upper()}",
        f"reply+{new_relay_token()}@evil.example",
        f"<REPLY+{t1.upper()}@{DOMAIN}>",  # duplicate
        "undisclosed-recipients:;",
        f"Folded\r\n <reply+{t1}@{DOMAIN}>",
    ]
    assert find_relay_tokens(headers, DOMAIN) == [t1, t2]
    assert find_relay_tokens([], DOMAIN) == []
    assert find_relay_tokens(["reply+x\r\nBcc: y@z"], DOMAIN) == []
