"""Relay tokens and addresses.

When the submitter's identity must not reach a recipient, the recipient sees
``reply+<token>@<relay domain>`` instead; replies to that address are routed
back by token. Tokens are random (160 bits from :mod:`secrets`), lowercase
RFC 4648 base32 without padding, so they are safe in the local part of an
address and survive case-folding mail systems.

Pure standard library: no I/O.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable

__all__ = [
    "TOKEN_BYTES",
    "find_relay_tokens",
    "new_relay_token",
    "parse_relay_address",
    "relay_address",
]

#: 20 bytes = 160 bits = exactly 32 base32 characters, no padding.
TOKEN_BYTES = 20

# >= 26 base32 characters carry >= 128 bits.
_TOKEN_RE = re.compile(r"[a-z2-7]{26,64}")
_PREFIX_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,30}[a-z0-9])?")
_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_COMMENT_RE = re.compile(r"\s*\([^()]*\)\s*$")
_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def new_relay_token() -> str:
    """A fresh token: 160 random bits, lowercase base32, no padding."""
    return base64.b32encode(secrets.token_bytes(TOKEN_BYTES)).decode("ascii").rstrip("=").lower()


def _check_domain(domain: object) -> str:
    if not isinstance(domain, str):
        raise ValueError("domain must be a string")
    d = domain.lower()
    if not d or len(d) > 253 or d != d.strip() or d.endswith("."):
        raise ValueError(f"invalid relay domain: {domain!r}")
    labels = d.split(".")
    if len(labels) < 2 or any(_LABEL_RE.fullmatch(label) is None for label in labels):
        raise ValueError(f"invalid relay domain: {domain!r}")
    return d


def _check_prefix(local_prefix: object) -> str:
    if not isinstance(local_prefix, str) or _PREFIX_RE.fullmatch(local_prefix.lower()) is None:
        raise ValueError(f"invalid local prefix: {local_prefix!r}")
    return local_prefix.lower()


def _check_token(token: object) -> str:
    if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
        raise ValueError("invalid relay token")
    return token


def relay_address(token: str, domain: str, local_prefix: str = "reply") -> str:
    """``"<prefix>+<token>@<domain>"``; raises ValueError on any bad part.

    The domain must be a plain DNS name (letters, digits, hyphens, dots): no
    CR/LF, ``@``, spaces or other header-injection material. The token must
    be lowercase base32 of at least 128 bits.
    """
    d = _check_domain(domain)
    p = _check_prefix(local_prefix)
    t = _check_token(token)
    return f"{p}+{t}@{d}"


def _addr_spec(address: str) -> str | None:
    """The bare address of ``"a@b"`` or ``"Name <a@b>"``; None if unclear."""
    if any(c in address for c in "\r\n\0"):
        return None
    s = _COMMENT_RE.sub("", address).strip()
    if s.endswith(">"):
        start = s.rfind("<")
        if start < 0:
            return None
        s = s[start + 1 : -1].strip()
    elif "<" in s or ">" in s:
        return None
    if s.lower().startswith("mailto:"):
        s = s[len("mailto:") :]
    return s or None


def _split_addresses(header: str) -> list[str]:
    """Split an address-list header on commas outside quotes, <> and ()."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = paren = 0
    for ch in header:
        if escaped:
            escaped = False
        elif ch == "\\" and (quoted or paren):
            escaped = True
        elif quoted:
            quoted = ch != '"'
        elif ch == '"':
            quoted = True
        elif ch == "(":
            paren += 1
        elif ch == ")" and paren:
            paren -= 1
        elif ch == "<" and not paren:
            angle += 1
        elif ch == ">" and angle and not paren:
            angle -= 1
        elif ch == "," and not (angle or paren):
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_relay_address(address: str, domain: str, local_prefix: str = "reply") -> str | None:
    """The token of one of our relay addresses, else None.

    Accepts ``reply+tok@domain`` and ``Name <reply+tok@domain>``; the
    domain and prefix compare case-insensitively and the token is returned
    lowercased. Anything malformed or foreign yields None (never raises for
    a bad ``address``; a bad ``domain``/``local_prefix`` argument raises).
    """
    d = _check_domain(domain)
    p = _check_prefix(local_prefix)
    if not isinstance(address, str):
        return None
    spec = _addr_spec(address)
    if spec is None or spec.count("@") != 1:
        return None
    local, _, addr_domain = spec.partition("@")
    if addr_domain.lower() != d:
        return None
    local = local.lower()
    if not local.startswith(p + "+"):
        return None
    token = local[len(p) + 1 :]
    if _TOKEN_RE.fullmatch(token) is None:
        return None
    return token


def find_relay_tokens(
    addresses: Iterable[str], domain: str, local_prefix: str = "reply"
) -> list[str]:
    """All distinct relay tokens among header values such as To/Cc.

    Each item may hold several comma-separated addresses. Order of first
    appearance is kept; duplicates are dropped.
    """
    d = _check_domain(domain)
    p = _check_prefix(local_prefix)
    found: list[str] = []
    for raw in addresses:
        if not isinstance(raw, str):
            continue
        item = _FOLD_RE.sub(" ", raw)  # unfold folded header lines
        if any(c in item for c in "\r\n\0"):
            continue
        for candidate in _split_addresses(item):
            token = parse_relay_address(candidate, d, p)
            if token is not None and token not in found:
                found.append(token)
    return found
