"""Charset handling: aliases, a decode fallback chain, RFC 2047 decoding.

Every function here returns text and never raises on bad data; problems are
reported as human-readable defect strings.
"""

from __future__ import annotations

import binascii
import codecs
import re
import unicodedata

__all__ = [
    "decode_bytes",
    "decode_encoded_words",
    "lookup_charset",
    "scrub",
    "clean_header_text",
]

# Names seen in the wild that Python does not know, or that are better read
# with a superset codec (as WHATWG and every mail client do).
_ALIASES: dict[str, str] = {
    "unicode-1-1-utf-7": "utf-7",
    "unicode-2-0-utf-7": "utf-7",
    "x-unicode20utf7": "utf-7",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601-1989": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "ksc_5601": "cp949",
    "euc-kr": "cp949",
    "x-windows-949": "cp949",
    "windows-949": "cp949",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "x-mac-ce": "mac_latin2",
    "x-mac-centraleurroman": "mac_latin2",
    "x-mac-cyrillic": "mac_cyrillic",
    "x-mac-greek": "mac_greek",
    "x-mac-turkish": "mac_turkish",
    "x-mac-icelandic": "mac_iceland",
    "iso-8859-8-i": "iso8859_8",
    "iso-8859-8-e": "iso8859_8",
    "iso_8859-8-i": "iso8859_8",
    "iso-8859-6-i": "iso8859_6",
    "iso-8859-6-e": "iso8859_6",
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "chinese": "gb18030",
    "big5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_2",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "iso-8859-9": "cp1254",
    "ucs-2": "utf-16",
    "unicode": "utf-16",
    "x-user-defined": "latin-1",
    "utf8mb4": "utf-8",
    "x-utf8": "utf-8",
}

# Names that mean "we don't know": decode heuristically.
_UNKNOWN_NAMES = frozenset(
    {
        "x-unknown",
        "unknown",
        "unknown-8bit",
        "8bit",
        "default",
        "charset",
        "none",
        "binary",
        "x-binary",
    }
)

# Codecs that are text encodings but must never be applied to mail content.
_DENIED_CODECS = frozenset(
    {"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "charmap", "palmos"}
)

_LEGACY_SINGLE_BYTE = frozenset({"ascii", "latin-1", "iso8859-1", "cp1252", "iso8859-15"})

_SURROGATES_RE = re.compile("[\ud800-\udfff]")
_WS_RE = re.compile(r"\s+")


def scrub(text: str) -> str:
    """Replace lone surrogates (from utf-7, surrogateescape...) and drop NULs."""
    if _SURROGATES_RE.search(text):
        text = _SURROGATES_RE.sub("\ufffd", text)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text


def clean_header_text(text: str) -> str:
    """Remove CR/LF and every other control/line-separator char; collapse whitespace."""
    text = scrub(text)
    out = []
    for ch in text:
        if ch in "\r\n\t\x0b\x0c\x85\u2028\u2029":
            out.append(" ")
        elif unicodedata.category(ch) == "Cc":
            out.append(" ")
        else:
            out.append(ch)
    return _WS_RE.sub(" ", "".join(out)).strip()


def _normalize_name(name: str | None) -> str:
    if not name:
        return ""
    n = name.strip().strip("\"'").strip().lower()
    n = n.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*en
    n = n.rstrip(";").strip()
    if n.startswith("charset="):
        n = n[len("charset=") :].strip("\"' ")
    return n[:64]


def lookup_charset(name: str | None) -> str | None:
    """Return a usable Python codec name for a declared charset, or None."""
    n = _normalize_name(name)
    if not n or n in _UNKNOWN_NAMES:
        return None
    n = _ALIASES.get(n, n)
    try:
        info = codecs.lookup(n)
    except (LookupError, ValueError, TypeError):
        return None
    if getattr(info, "_is_text_encoding", True) is False or info.name in _DENIED_CODECS:
        return None
    return info.name


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None


def _heuristic(data: bytes) -> tuple[str, str]:
    """utf-8 → cp1252 → latin-1; returns (text, codec used)."""
    for codec in ("utf-8", "cp1252"):
        text = _try(data, codec)
        if text is not None:
            return text, codec
    return data.decode("latin-1"), "latin-1"


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, list[str]]:
    """Decode ``data`` using the declared charset with fallbacks.

    Chain: declared (via aliases) → utf-8 → cp1252 → latin-1. Mis-declarations
    (us-ascii/latin-1 declared but the bytes are UTF-8) are detected.
    """
    if not data:
        return "", []
    if data.startswith(b"\xef\xbb\xbf"):
        text = _try(data[3:], "utf-8")
        if text is not None:
            return scrub(text), []
    label = _normalize_name(declared)
    codec = lookup_charset(declared)
    if codec is None:
        text, defect = _decode_undeclared(data, label)
    elif codec in _LEGACY_SINGLE_BYTE:
        text, defect = _decode_legacy(data, codec, label)
    else:
        as_declared = _try(data, codec)
        if as_declared is not None:
            text, defect = as_declared, None
        else:
            text, defect = _decode_invalid(data, codec, label)
    return scrub(text), [defect] if defect else []


def _decode_undeclared(data: bytes, label: str) -> tuple[str, str | None]:
    """No usable charset declared: ASCII as is, else the utf-8 → cp1252 → latin-1 guess."""
    if data.isascii():
        return data.decode("ascii"), None
    text, used = _heuristic(data)
    if label:
        return text, f"charset {label!r} unknown; decoded as {used}"
    return text, f"no charset declared for 8-bit data; decoded as {used}"


def _decode_legacy(data: bytes, codec: str, label: str) -> tuple[str, str | None]:
    """ASCII or a Latin charset declared: often really UTF-8 (or windows-1252)."""
    if data.isascii():
        return data.decode("ascii"), None
    as_utf8 = _try(data, "utf-8")
    if as_utf8 is not None:
        return as_utf8, f"declared {label!r} but content is UTF-8; decoded as utf-8"
    if codec == "ascii":
        text, used = _heuristic(data)
        return text, f"declared {label!r} but 8-bit bytes present; decoded as {used}"
    if codec in ("latin-1", "iso8859-1"):
        # WHATWG: ISO-8859-1 labels mean windows-1252.
        as_cp1252 = _try(data, "cp1252")
        if as_cp1252 is not None:
            return as_cp1252, None
    return data.decode(codec, "replace"), None


def _decode_invalid(data: bytes, codec: str, label: str) -> tuple[str, str]:
    """The declared codec failed on these bytes: UTF-8, the codec with U+FFFD, or cp1252."""
    if codec != "utf-8":
        as_utf8 = _try(data, "utf-8")
        if as_utf8 is not None:
            return as_utf8, f"invalid {label!r} data; decoded as utf-8"
    if codec in ("utf-8", "utf-16", "utf-32", "utf-7") or _is_multibyte(codec):
        replaced = data.decode(codec, "replace")
        bad = replaced.count("\ufffd")
        good_non_ascii = sum(1 for c in replaced if ord(c) > 0x7F and c != "\ufffd")
        if codec != "utf-8" or good_non_ascii >= bad:
            return replaced, f"invalid {label!r} data; decoded with replacement characters"
    as_cp1252 = _try(data, "cp1252")
    if as_cp1252 is not None:
        return as_cp1252, f"invalid {label!r} data; decoded as cp1252"
    return data.decode("latin-1"), f"invalid {label!r} data; decoded as latin-1"


def _is_multibyte(codec: str) -> bool:
    return codec.startswith(("gb", "big5", "cp9", "euc", "shift", "iso2022", "hz", "johab", "utf"))


# --- RFC 2047 -----------------------------------------------------------------

_EW_RE = re.compile(r"=\?([^?\s]{1,80})\?([bBqQ])\?([^?]*)\?=")
_Q_HEX_RE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _decode_q(text: str) -> bytes:
    raw = text.replace("_", " ").encode("latin-1", "replace")
    return _Q_HEX_RE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _decode_b(text: str) -> bytes | None:
    cleaned = re.sub(r"[^A-Za-z0-9+/=]", "", text).rstrip("=")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned.encode("ascii"))
    except (binascii.Error, ValueError):
        try:
            return binascii.a2b_base64(cleaned[: len(cleaned) // 4 * 4].encode("ascii"))
        except (binascii.Error, ValueError):
            return None


def decode_encoded_words(value: str) -> tuple[str, list[str]]:
    """Tolerant RFC 2047 decoder.

    Decodes encoded words anywhere (also inside quotes, which is illegal but
    common), joins adjacent words of the same charset before decoding (mailers
    split multi-byte characters across words) and drops whitespace between
    adjacent encoded words.
    """
    defects: list[str] = []
    if "=?" not in value:
        return value, defects
    out: list[str] = []
    pos = 0
    pending: bytearray | None = None
    pending_cs = ""

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            text, d = decode_bytes(bytes(pending), pending_cs)
            out.append(text)
            defects.extend(f"encoded word: {x}" for x in d)
            pending = None

    for m in _EW_RE.finditer(value):
        gap = value[pos : m.start()]
        # Whitespace between two encoded words is dropped (RFC 2047 section 6.2).
        if gap and not (gap.isspace() and pos != 0):
            flush()
            out.append(gap)
        charset, enc, payload = m.group(1), m.group(2).lower(), m.group(3)
        data = _decode_q(payload) if enc == "q" else _decode_b(payload)
        if data is None:
            flush()
            defects.append("undecodable base64 encoded word kept as is")
            out.append(m.group(0))
        else:
            cs = _normalize_name(charset)
            if pending is not None and cs != pending_cs:
                flush()
            if pending is None:
                pending = bytearray()
                pending_cs = cs
            pending += data
        pos = m.end()
    flush()
    out.append(value[pos:])
    return "".join(out), defects
