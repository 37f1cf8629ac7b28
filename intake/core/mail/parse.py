"""``parse_message``: raw RFC 5322 bytes → ``ParsedMessage``. Never raises.

Design notes
------------
* The message is parsed with ``email.policy.default``. Every header access is
  wrapped: if the modern header parser raises, or yields undecoded/garbled text
  (surrogates, U+FFFD, leftover encoded words), we fall back to the raw header
  value (``Message.raw_items``), decode 8-bit bytes with the charset chain and
  decode RFC 2047 words with our tolerant decoder. The defect is recorded.
* MIME parameters (content type, charset, filename, disposition) are read
  through a compat32 "shadow" of each part's Content-* headers: its accessors
  are string based and robust against malformed parameter lists.
* Bodies: ``get_payload(decode=True)`` + ``charset.decode_bytes``.
* Embedded messages (message/rfc822, message/global): kept whole as an
  attachment (``is_message=True``, ``message-<k>.eml`` unless named) AND walked:
  their own attachments are surfaced *flat* in ``attachments`` with the file
  name prefixed ``msg<k>-`` where ``k`` numbers embedded messages in document
  order (depth-first, 1-based). Their text bodies are not merged into ``text``.
"""

# parse_message must never raise, so broad ``except Exception`` (and, where a
# fallback value is already in place, ``pass``) is deliberate in this module.
# ruff: noqa: BLE001, S110

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import email.utils
import functools
import hashlib
import quopri
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from typing import Any

from ..sniff import sniff_type
from .autoreply import BOUNCE_SENDERS, auto_reason
from .charset import clean_header_text, decode_bytes, decode_encoded_words, scrub
from .html import html_to_text, sanitize_html
from .message import Address, Attachment, ParsedMessage
from .policies import HEADER_FACTORY
from .threads import find_record_tags

__all__ = ["Address", "Attachment", "ParsedMessage", "parse_message"]

_MAX_DEPTH = 40
_MAX_DEFECTS = 100
_MAX_PARTS = 5000
# policy.default's structured header parser costs ~5 kB of memory per input
# byte; a 1 MB header would exhaust the worker. Longer values are handled by
# our linear raw-value fallbacks, and the policy only ever sees a prefix.
_STRUCTURED_HEADER_MAX = 8 * 1024


class _UseRawValue(Exception):
    pass


# Header values up to this length are parsed once and the (immutable) header
# object reused: the feed parser alone asks for each part's Content-Type several
# times, and policy.default runs its full header parser on every ask.
_CACHED_HEADER_MAX = 1024


class _BoundedPolicy(email.policy.EmailPolicy):
    """``email.policy.default`` that never runs its header parser on huge values."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if type(value) is str and len(value) <= _CACHED_HEADER_MAX:
            return _parsed_header(name, value)
        if len(value) > _STRUCTURED_HEADER_MAX:
            value = value[:_STRUCTURED_HEADER_MAX]
        return super().header_fetch_parse(name, value)


_POLICY = _BoundedPolicy(header_factory=HEADER_FACTORY)  # as policies.DEFAULT


@functools.lru_cache(maxsize=256)
def _parsed_header(name: str, value: str) -> Any:
    return email.policy.EmailPolicy.header_fetch_parse(_POLICY, name, value)


# --------------------------------------------------------------------------- helpers


class _Defects:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.dropped = 0

    def add(self, note: str) -> None:
        note = clean_header_text(note)[:300]
        if not note or note in self.items:
            return
        if len(self.items) >= _MAX_DEFECTS:
            self.dropped += 1
            return
        self.items.append(note)

    def result(self) -> tuple[str, ...]:
        if self.dropped:
            return (*self.items, f"{self.dropped} more defects not listed")
        return tuple(self.items)


def _describe_defect(d: Any) -> str:
    name = type(d).__name__
    text = str(d).strip()
    return f"{name}: {text}" if text and text != name else name


def _has_surrogates(s: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in s)


def _looks_garbled(s: str) -> bool:
    return _has_surrogates(s) or "\ufffd" in s or bool(re.search(r"=\?[^?\s]+\?[bBqQ]\?", s))


def _raw_values(msg: Message, name: str) -> list[str]:
    out: list[str] = []
    try:
        for k, v in msg.raw_items():
            if isinstance(k, str) and k.strip().lower() == name:
                out.append(v if isinstance(v, str) else str(v))
    except Exception:
        pass
    return out


def _raw_to_text(value: str, defects: _Defects, where: str, decode_words: bool = True) -> str:
    """Raw header value (may carry surrogate-escaped 8-bit bytes) → text."""
    value = re.sub(r"\r?\n(?=[ \t])", "", value)
    if _has_surrogates(value):
        data = value.encode("utf-8", "surrogateescape")
        text, notes = decode_bytes(data, None)
        defects.add(f"{where}: raw 8-bit bytes in header")
        for n in notes:
            defects.add(f"{where}: {n}")
        value = text
    if decode_words:
        value, notes = decode_encoded_words(value)
        for n in notes:
            defects.add(f"{where}: {n}")
    return scrub(value)


def _too_long(raws: list[str], name: str, defects: _Defects) -> bool:
    if sum(len(r) for r in raws) > _STRUCTURED_HEADER_MAX:
        defects.add(f"{name}: header longer than {_STRUCTURED_HEADER_MAX} chars; used raw value")
        return True
    return False


def _unstructured(msg: Message, name: str, defects: _Defects) -> str | None:
    raws = _raw_values(msg, name)
    if not raws:
        return None
    if _too_long(raws, name, defects):
        return _raw_to_text(raws[0], defects, name)
    try:
        h = msg.get(name)
        if h is not None:
            s = str(h)
            for d in getattr(h, "defects", ()):
                defects.add(f"{name}: {_describe_defect(d)}")
            if not _looks_garbled(s):
                return scrub(s)
    except Exception as exc:
        defects.add(f"{name}: header parser failed ({type(exc).__name__}); used raw value")
    return _raw_to_text(raws[0], defects, name)


def _clean_address(addr: str) -> str:
    """An address (or Content-ID) as one token: no whitespace, controls or angle brackets."""
    addr = scrub(addr)
    addr = "".join(c for c in addr if not c.isspace() and unicodedata.category(c) != "Cc")
    return addr.strip("<>")


_PLACEHOLDER_RE = re.compile(r"EWPLACEHOLDER(\d+)X")


def _hide_encoded_words(text: str) -> tuple[str, list[str]]:
    words: list[str] = []

    def hide(m: re.Match[str]) -> str:
        words.append(m.group(0))
        return f"EWPLACEHOLDER{len(words) - 1}X"

    return _EW_ANY_RE.sub(hide, text), words


def _reveal_encoded_words(s: str, words: list[str], defects: _Defects | None, where: str) -> str:
    """Put hidden encoded words back: decoded when ``defects`` is given, raw otherwise."""

    def sub(m: re.Match[str]) -> str:
        i = int(m.group(1))
        if i >= len(words):
            return m.group(0)
        if defects is None:
            return words[i]
        dec, notes = decode_encoded_words(words[i])
        for n in notes:
            defects.add(f"{where}: {n}")
        return dec

    return _PLACEHOLDER_RE.sub(sub, s)


def _addresses(msg: Message, name: str, defects: _Defects) -> tuple[Address, ...]:
    raws = _raw_values(msg, name)
    if not raws:
        return ()
    result: list[Address] = []
    try:
        if _too_long(raws, name, defects):
            raise _UseRawValue
        headers = msg.get_all(name) or []
        ok = True
        for h in headers:
            for d in getattr(h, "defects", ()):
                defects.add(f"{name}: {_describe_defect(d)}")
            for a in getattr(h, "addresses", ()):
                disp, spec = str(a.display_name or ""), str(a.addr_spec or "")
                if _looks_garbled(disp) or _looks_garbled(spec):
                    ok = False
                result.append(Address(clean_header_text(disp), _clean_address(spec)))
        if not result and any("@" in r for r in raws):
            ok = False
        if ok:
            return tuple(a for a in result if a.address or a.name)
        defects.add(f"{name}: address list garbled; re-parsed raw value")
    except _UseRawValue:
        pass
    except Exception as exc:
        defects.add(f"{name}: address parser failed ({type(exc).__name__}); used raw value")
    result = []
    for raw in raws:
        text = _raw_to_text(raw, defects, name, decode_words=False)
        # Hide encoded words behind atom placeholders so that specials inside
        # them (":", ",", "<", "@" after decoding CR/LF tricks) cannot change
        # the address-list structure; decode them after splitting.
        text, words = _hide_encoded_words(text)
        try:
            pairs = email.utils.getaddresses([text])
        except Exception:
            pairs = [("", text)]
        for disp, spec in pairs:
            disp_text = _reveal_encoded_words(disp, words, defects, name)
            spec_text = _reveal_encoded_words(spec, words, None, name)
            a = Address(clean_header_text(disp_text), _clean_address(spec_text))
            if a.address or a.name:
                result.append(a)
    return tuple(result)


_MSGID_RE = re.compile(r"<([^<>]*)>")


def _msgids(value: str) -> tuple[str, ...]:
    ids: list[str] = []
    found = _MSGID_RE.findall(value)
    if not found:
        found = [t for t in re.split(r"[\s,]+", value) if "@" in t]
    for f in found:
        mid = "".join(c for c in f if not c.isspace() and unicodedata.category(c) != "Cc").strip(
            "<>"
        )
        if mid and mid not in ids:
            ids.append(mid[:998])
    return tuple(ids)


def _header_text(msg: Message, name: str, defects: _Defects) -> str:
    raws = _raw_values(msg, name)
    return " ".join(_raw_to_text(r, defects, name) for r in raws)


def _date(msg: Message, defects: _Defects) -> datetime | None:
    raws = _raw_values(msg, "date")
    if not raws:
        return None
    text = clean_header_text(_raw_to_text(raws[0], defects, "date"))
    try:
        dt = email.utils.parsedate_to_datetime(text)
    except Exception:
        defects.add(f"date: unparseable {text[:60]!r}")
        return None
    if dt is None:  # pragma: no cover - older Pythons
        return None
    if dt.tzinfo is None:
        defects.add("date: no usable time zone; assumed UTC")
        dt = dt.replace(tzinfo=UTC)
    return dt


# --- MIME parameter access via a compat32 shadow ------------------------------------


def _shadow(part: Message) -> Message:
    sh = Message(policy=email.policy.compat32)
    try:
        for k, v in part.raw_items():
            if isinstance(k, str) and k.lower().startswith("content-"):
                value = v if isinstance(v, str) else str(v)
                if _has_surrogates(value):
                    # Raw 8-bit bytes (typically UTF-8 file names): decode them
                    # ourselves; compat32 would turn them into U+FFFD.
                    value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)[0]
                # compat32's parameter splitter is quadratic: bound its input.
                sh[k] = value[:_STRUCTURED_HEADER_MAX]
    except Exception:
        pass
    return sh


def _content_type(sh: Message) -> str:
    try:
        ct = sh.get_content_type()
    except Exception:
        return "application/octet-stream"
    return scrub(ct)[:200]


def _param(sh: Message, name: str, header: str = "content-type") -> str | None:
    try:
        v = sh.get_param(name, header=header)
    except Exception:
        return None
    if v is None:
        return None
    if isinstance(v, tuple):
        try:
            v = email.utils.collapse_rfc2231_value(v)
        except Exception:
            v = str(v[2])
    return str(v)


def _disposition(sh: Message) -> str | None:
    try:
        return sh.get_content_disposition()
    except Exception:
        return None


_EW_ANY_RE = re.compile(r"=\?[^?\s]{1,80}\?[bBqQ]\?[^?]*\?=")
_WIN_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.I)


def _raw_filename(sh: Message, defects: _Defects, where: str) -> str:
    name: str | None = None
    try:
        name = sh.get_filename()
    except Exception:
        name = None
    if not name:
        # Some mailers (Outlook) put a bare name= on Content-Disposition or
        # a "filename" without proper quoting; get_filename covers those.
        return ""
    if _has_surrogates(name):
        data = name.encode("utf-8", "surrogateescape")
        name, notes = decode_bytes(data, None)
        defects.add(f"{where}: raw 8-bit bytes in filename")
        for n in notes:
            defects.add(f"{where}: filename {n}")
    if "=?" in name:
        name, notes = decode_encoded_words(name)
        for n in notes:
            defects.add(f"{where}: filename {n}")
    return name


def sanitize_filename(name: str) -> str:
    """Basename only; no control/format characters; no leading dots; safe on Windows."""
    name = scrub(name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))
    name = re.sub(r'[<>:"|?*]', "_", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    if _WIN_RESERVED.match(name):
        name = "_" + name
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = stem[: 200 - len(ext) - 1] + "." + ext if dot and len(ext) <= 16 else name[:200]
    return name


_EXT_BY_TYPE = {
    "application/pdf": "pdf",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/tiff": "tif",
    "image/bmp": "bmp",
    "application/zip": "zip",
    "application/gzip": "gz",
    "text/plain": "txt",
    "text/html": "html",
    "text/csv": "csv",
    "text/calendar": "ics",
    "text/vcard": "vcf",
    "text/rtf": "rtf",
    "message/rfc822": "eml",
    "message/global": "eml",
    "message/delivery-status": "txt",
    "text/rfc822-headers": "txt",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
}


def _msg_bytes(m: Message) -> bytes:
    try:
        return m.as_bytes(policy=email.policy.compat32)
    except Exception:
        pass
    try:
        return m.as_string(policy=email.policy.compat32).encode("utf-8", "surrogateescape")
    except Exception:
        return b""


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_OTHER_BYTES = bytes(b for b in range(256) if b not in _B64_ALPHABET)


def _b64decode_tolerant(text: str) -> bytes:
    if text.isascii():
        # The same as the regex below, in one C pass (attachments are large).
        cleaned = text.encode("ascii").translate(None, _B64_OTHER_BYTES).decode("ascii")
    else:
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text)
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]
    cleaned += "=" * (-len(cleaned) % 4)
    return binascii.a2b_base64(cleaned.encode("ascii"))


def _payload_bytes(part: Message, sh: Message, defects: _Defects, where: str) -> bytes:
    cte = str(sh.get("content-transfer-encoding", "") or "").strip().lower()
    if cte == "base64" and not part.is_multipart():
        try:
            raw = part.get_payload()
            if isinstance(raw, str):
                return _b64decode_tolerant(raw)
        except Exception as exc:
            defects.add(f"{where}: base64 decoding failed ({type(exc).__name__}); kept raw")
    try:
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            return data
    except Exception as exc:
        defects.add(f"{where}: payload decoding failed ({type(exc).__name__}); kept raw")
    try:
        raw = part.get_payload()
        if isinstance(raw, str):
            return raw.encode("utf-8", "surrogateescape")
        if isinstance(raw, list):
            return b"\n".join(_msg_bytes(m) for m in raw if isinstance(m, Message))
    except Exception:
        pass
    return b""


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed → plain paragraphs."""
    out: list[str] = []
    buf = ""
    for line in text.split("\n"):
        if line.startswith(" "):
            line = line[1:]
        if line.endswith(" ") and line != "-- ":
            buf += line[:-1] if delsp else line
        else:
            out.append(buf + line)
            buf = ""
    if buf:
        out.append(buf)
    return "\n".join(out)


# --------------------------------------------------------------------------- walker


@dataclass
class _Body:
    texts: list[tuple[str, bool]] = field(default_factory=list)  # (text, came from text/plain)
    htmls: list[str] = field(default_factory=list)


@dataclass
class _Ctx:
    max_bytes: int
    defects: _Defects
    attachments: list[Attachment] = field(default_factory=list)
    truncated: bool = False
    msg_counter: int = 0
    parts_seen: int = 0
    has_dsn_part: bool = False
    report_ids: list[str] = field(default_factory=list)
    embedded_ids: list[str] = field(default_factory=list)


_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,127}/[a-z0-9!#$&^_.+-]{1,127}")


def _add_attachment(
    ctx: _Ctx,
    data: bytes,
    *,
    filename: str,
    declared_type: str,
    inline: bool,
    content_id: str | None,
    is_message: bool,
    prefix: str,
    where: str,
) -> None:
    sniffed = sniff_type(data, filename)
    declared_type = declared_type.strip().lower()
    if not _MIME_TYPE.fullmatch(declared_type):
        # Found by fuzzing: a bare CR inside Content-Type reached declared_type.
        ctx.defects.add(f"{where}: malformed content type {declared_type[:80]!r}")
        declared_type = "application/octet-stream"
    clean = sanitize_filename(filename)
    if filename and clean != filename:
        ctx.defects.add(f"{where}: unsafe filename {filename[:80]!r} sanitised to {clean!r}")
    if is_message and clean and not clean.lower().endswith(".eml"):
        clean += ".eml"
    if not clean:
        n = len(ctx.attachments) + 1
        if is_message:
            clean = f"message-{ctx.msg_counter}.eml"
        else:
            ext = _EXT_BY_TYPE.get(declared_type) or _EXT_BY_TYPE.get(sniffed, "bin")
            clean = f"attachment-{n}.{ext}"
    size = len(data)
    digest = hashlib.sha256(data).hexdigest()
    content = data
    if size > ctx.max_bytes:
        content = b""
        ctx.truncated = True
        ctx.defects.add(
            f"{where}: attachment {clean!r} is {size} bytes, "
            f"over the {ctx.max_bytes}-byte cap; content dropped"
        )
    ctx.attachments.append(
        Attachment(
            filename=prefix + clean,
            declared_type=declared_type,
            sniffed_type=sniffed,
            size=size,
            sha256=digest,
            content=content,
            inline=inline,
            content_id=content_id,
            is_message=is_message,
        )
    )


def _content_id(part: Message) -> str | None:
    raws = _raw_values(part, "content-id")
    return (_clean_address(raws[0]) or None) if raws else None


def _walk(part: Message, ctx: _Ctx, depth: int, prefix: str, where: str, parent_type: str) -> _Body:
    body = _Body()
    ctx.parts_seen += 1
    if ctx.parts_seen > _MAX_PARTS:
        if ctx.parts_seen == _MAX_PARTS + 1:
            ctx.defects.add(f"more than {_MAX_PARTS} MIME parts; the rest ignored")
        return body
    if depth > _MAX_DEPTH:
        ctx.defects.add(f"{where}: MIME nesting deeper than {_MAX_DEPTH}; ignored")
        return body
    for d in getattr(part, "defects", ()) or ():
        ctx.defects.add(f"{where}: {_describe_defect(d)}")

    sh = _shadow(part)
    ctype = _content_type(sh)
    maintype, _, subtype = ctype.partition("/")
    disp = _disposition(sh)
    filename = _raw_filename(sh, ctx.defects, where)
    payload = part.get_payload() if part.is_multipart() else None

    if maintype == "multipart" and isinstance(payload, list):
        return _walk_multipart(payload, ctx, depth, prefix, where, ctype)
    if (
        maintype == "message"
        and subtype in ("rfc822", "global")
        or (
            maintype == "message"
            and isinstance(payload, list)
            and subtype not in ("delivery-status", "disposition-notification")
        )
    ):
        ctx.msg_counter += 1
        k = ctx.msg_counter
        inner = _embedded_message(part, payload, ctx.defects, where)
        data = (
            _msg_bytes(inner) if inner is not None else _payload_bytes(part, sh, ctx.defects, where)
        )
        _add_attachment(
            ctx,
            data,
            filename=filename,
            declared_type=ctype,
            inline=disp == "inline",
            content_id=_content_id(part),
            is_message=True,
            prefix=prefix,
            where=where,
        )
        if inner is not None:
            mid = _msgids(" ".join(_raw_values(inner, "message-id")))
            if mid:
                ids = ctx.report_ids if parent_type == "multipart/report" else ctx.embedded_ids
                ids.append(mid[0])
            inner_body = _walk(inner, ctx, depth + 1, f"msg{k}-", f"{where} (message {k})", ctype)
            if depth == 0:
                # The whole message is a wrapper (GroupWise-style forwarding):
                # its only content is the embedded message, so show that text.
                return inner_body
        return body
    return _walk_leaf(part, sh, ctx, prefix, where, ctype, disp, filename)


def _walk_multipart(
    children: list[Any], ctx: _Ctx, depth: int, prefix: str, where: str, ctype: str
) -> _Body:
    """Walk a multipart's children; an alternative keeps one text and one HTML version."""
    results = [
        _walk(
            child,
            ctx,
            depth + 1,
            prefix,
            f"{where}.{i}" if where != "message" else f"part {i}",
            ctype,
        )
        for i, child in enumerate(children, 1)
        if isinstance(child, Message)
    ]
    body = _Body()
    if ctype == "multipart/alternative":
        body.texts = _chosen_alternative_texts(results)
        for r in reversed(results):
            if r.htmls:
                body.htmls = r.htmls
                break
    else:
        for r in results:
            body.texts.extend(r.texts)
            body.htmls.extend(r.htmls)
    return body


def _chosen_alternative_texts(results: list[_Body]) -> list[tuple[str, bool]]:
    for r in results:  # text/plain preferred when non-empty
        if any(fp and t.strip() for t, fp in r.texts):
            return r.texts
    for r in reversed(results):  # else the richest (last) alternative with text
        if any(t.strip() for t, _ in r.texts):
            return r.texts
    return []


def _embedded_message(part: Message, payload: Any, defects: _Defects, where: str) -> Message | None:
    """The message inside a message/* part, re-parsed if it was (illegally) transfer-encoded."""
    inner: Message | None = None
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        inner = payload[0]
    cte = (_raw_values(part, "content-transfer-encoding") or [""])[0].strip().lower()
    if inner is not None and cte in ("base64", "quoted-printable"):
        # Illegal but seen: an encoded message/rfc822. Decode and re-parse.
        defects.add(f"{where}: message/rfc822 with {cte} transfer encoding")
        raw_inner = _msg_bytes(inner)
        try:
            data = (
                base64.b64decode(raw_inner) if cte == "base64" else quopri.decodestring(raw_inner)
            )
            inner = email.message_from_bytes(data, policy=_POLICY)
        except Exception:
            pass
    return inner


def _walk_leaf(
    part: Message,
    sh: Message,
    ctx: _Ctx,
    prefix: str,
    where: str,
    ctype: str,
    disp: str | None,
    filename: str,
) -> _Body:
    """A single part: body text, attachment, or both; DSN parts are noted for bounces."""
    body = _Body()
    data = _payload_bytes(part, sh, ctx.defects, where)
    if ctype in ("message/delivery-status", "message/global-delivery-status"):
        ctx.has_dsn_part = True
    if ctype == "text/rfc822-headers" or ctype == "message/global-headers":
        try:
            hdrs = BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
            mid = _msgids(" ".join(_raw_values(hdrs, "message-id")))
            if mid:
                ctx.report_ids.append(mid[0])
        except Exception:
            pass
    is_body_type = ctype in ("text/plain", "text/html") or ctype.partition("/")[0] == "multipart"
    # Bodies: text parts without a file name that are not marked attachment.
    # A text part marked inline *with* a file name (Apple Mail, msg_04 of the
    # stdlib corpus) is shown in the body as the sender's client did, and also
    # kept as an attachment so the file is not lost.
    as_body = is_body_type and disp != "attachment" and (not filename or disp == "inline")
    if as_body:
        charset = _param(sh, "charset")
        text, notes = decode_bytes(data, charset)
        for n in notes:
            ctx.defects.add(f"{where}: {n}")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if ctype == "text/html":
            body.htmls.append(text)
            body.texts.append((html_to_text(text), False))
        else:
            fmt = (_param(sh, "format") or "").lower()
            if fmt == "flowed":
                text = _unflow(text, (_param(sh, "delsp") or "").lower() == "yes")
            body.texts.append((text, True))
        if not filename:
            return body

    cid = _content_id(part)
    inline = disp == "inline" or (disp is None and cid is not None)
    _add_attachment(
        ctx,
        data,
        filename=filename,
        declared_type=ctype,
        inline=inline,
        content_id=cid,
        is_message=False,
        prefix=prefix,
        where=where,
    )
    return body


# --------------------------------------------------------------------------- entry point


def _empty(raw_len: int, defects: tuple[str, ...]) -> ParsedMessage:
    return ParsedMessage(
        subject="",
        from_=None,
        to=(),
        cc=(),
        reply_to=(),
        delivered_to=(),
        message_id=None,
        in_reply_to=(),
        references=(),
        date=None,
        text="",
        html_sanitized=None,
        attachments=(),
        defects=defects,
        auto_submitted=None,
        is_bounce=False,
        bounced_message_id=None,
        record_tags=(),
        size=raw_len,
        truncated=False,
    )


def parse_message(
    raw: bytes,
    *,
    max_attachment_bytes: int = 25 * 1024 * 1024,
    record_tag_prefix: str = "EX",
) -> ParsedMessage:
    """Parse one message. Never raises for any bytes input."""
    try:
        data = bytes(raw)
    except Exception:
        try:
            data = str(raw).encode("utf-8", "surrogateescape")
        except Exception:
            data = b""
    try:
        return _parse(data, max(0, int(max_attachment_bytes)), record_tag_prefix or "")
    except Exception as exc:  # last resort: the caller keeps the raw bytes
        return _empty(len(data), (f"parser failure: {type(exc).__name__}: {str(exc)[:200]}",))


def _parse(raw: bytes, max_bytes: int, tag_prefix: str) -> ParsedMessage:
    defects = _Defects()
    msg, headers_only = _read_message(raw, defects)

    subject = clean_header_text(_unstructured(msg, "subject", defects) or "")
    from_list = _addresses(msg, "from", defects)
    if len(from_list) > 1:
        defects.add("from: more than one address; first used")
    to = _addresses(msg, "to", defects)
    cc = _addresses(msg, "cc", defects)
    reply_to = _addresses(msg, "reply-to", defects)
    delivered = _delivered_to(msg, defects)
    mids = _msgids(_header_text(msg, "message-id", defects))
    in_reply_to = _msgids(_header_text(msg, "in-reply-to", defects))
    references = _msgids(_header_text(msg, "references", defects))
    date = _date(msg, defects)

    ctx = _Ctx(max_bytes=max_bytes, defects=defects)
    body = _Body() if headers_only else _walk(msg, ctx, 0, "", "message", "")
    segments = [t.strip("\n").rstrip() for t, _ in body.texts]
    text = scrub("\n\n".join(s for s in segments if s.strip())).lstrip("\ufeff")
    html_sanitized: str | None = None
    if body.htmls:
        try:
            html_sanitized = sanitize_html(scrub("\n".join(body.htmls)))
        except Exception as exc:
            defects.add(f"html: sanitiser failed ({type(exc).__name__}); no HTML kept")

    from_addr = from_list[0].address if from_list else ""
    report_type, is_bounce, bounced_id = _bounce(msg, from_addr, ctx)
    auto = _auto_submitted(msg, defects, from_addr, report_type)
    if auto is None and is_bounce:
        auto = "report: delivery-status"

    return ParsedMessage(
        subject=subject,
        from_=from_list[0] if from_list else None,
        to=to,
        cc=cc,
        reply_to=reply_to,
        delivered_to=delivered,
        message_id=mids[0] if mids else None,
        in_reply_to=in_reply_to,
        references=references,
        date=date,
        text=text,
        html_sanitized=html_sanitized,
        attachments=tuple(ctx.attachments),
        defects=defects.result(),
        auto_submitted=auto,
        is_bounce=is_bounce,
        bounced_message_id=bounced_id,
        record_tags=find_record_tags(subject, tag_prefix),
        size=len(raw),
        truncated=ctx.truncated,
    )


def _read_message(raw: bytes, defects: _Defects) -> tuple[Message, bool]:
    """The stdlib's parse of ``raw``, and whether only its headers could be parsed."""
    try:
        return email.message_from_bytes(raw, policy=_POLICY), False
    except RecursionError:
        # The stdlib parser recurses once per MIME level; a few hundred
        # levels exhaust the stack. Keep the headers, skip the body.
        defects.add("message: MIME structure nested too deeply to parse; body not parsed")
        return BytesParser(policy=_POLICY).parsebytes(raw, headersonly=True), True
    except Exception as exc:
        defects.add(f"message: policy.default parse failed ({type(exc).__name__}); used compat32")
        return BytesParser(policy=email.policy.compat32).parsebytes(raw), False


def _delivered_to(msg: Message, defects: _Defects) -> tuple[str, ...]:
    """Envelope recipients the receiving servers recorded, deduplicated, in order."""
    delivered: list[str] = []
    for hname in ("delivered-to", "x-original-to", "envelope-to"):
        for rv in _raw_values(msg, hname):
            text = clean_header_text(_raw_to_text(rv, defects, hname, decode_words=False))
            try:
                pairs = email.utils.getaddresses([text])
            except Exception:
                pairs = [("", text)]
            for _, spec in pairs:
                a = _clean_address(spec)
                if a and a not in delivered:
                    delivered.append(a)
    return tuple(delivered)


def _bounce(msg: Message, from_addr: str, ctx: _Ctx) -> tuple[str | None, bool, str | None]:
    """The report type, whether the message is a bounce, and the Message-ID it bounces."""
    sh = _shadow(msg)
    report_type: str | None = None
    if _content_type(sh) == "multipart/report":
        report_type = (_param(sh, "report-type") or "").strip().lower()
    local = from_addr.split("@", 1)[0].lower()
    is_bounce = report_type == "delivery-status" or (local in BOUNCE_SENDERS and ctx.has_dsn_part)
    bounced_id: str | None = None
    if is_bounce:
        candidates = ctx.report_ids or ctx.embedded_ids
        bounced_id = candidates[0] if candidates else None
    return report_type, is_bounce, bounced_id


# Headers that mark automatic mail (autoreply.auto_reason reads them).
_AUTO_REPLY_HEADERS = (
    "auto-submitted",
    "x-autoreply",
    "x-autorespond",
    "x-autoresponder",
    "x-autogenerated",
    "precedence",
    "x-auto-response-suppress",
    "x-loop",
    "x-ms-exchange-inbox-rules-loop",
    "x-apple-action",
    "list-id",
    "list-unsubscribe",
    "list-post",
    "return-path",
)


def _auto_submitted(
    msg: Message, defects: _Defects, from_addr: str, report_type: str | None
) -> str | None:
    """Why the message counts as automatic (autoreply.auto_reason), or None."""
    header_map: dict[str, list[str]] = {}
    for hname in _AUTO_REPLY_HEADERS:
        vals = _raw_values(msg, hname)
        if vals:
            header_map[hname] = [clean_header_text(_raw_to_text(v, defects, hname)) for v in vals]
    return auto_reason(header_map, from_address=from_addr, report_type=report_type)
