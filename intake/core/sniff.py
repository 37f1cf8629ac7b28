"""Content-type sniffing from magic bytes.

``sniff_type(data, filename)`` looks at the bytes only. The declared file name
is a hint for *text* subtypes (``.csv`` -> ``text/csv``) and nothing else: a
file named ``invoice.pdf`` that starts with ``MZ`` is ``application/x-msdownload``.

Pure: no I/O, no third-party imports. Shared by e-mail parsing and web form
uploads.
"""

# Must never raise on hostile input: broad excepts are deliberate.
# ruff: noqa: BLE001, S110

from __future__ import annotations

import io
import re
import struct
import zipfile

__all__ = ["sniff_type", "OCTET_STREAM", "EMPTY"]

OCTET_STREAM = "application/octet-stream"
EMPTY = "application/x-empty"

_SIMPLE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"{\\rtf", "text/rtf"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\x7fELF", "application/x-executable"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"BZh", "application/x-bzip2"),
    (b"%!PS", "application/postscript"),
    (b"\x00\x00\x01\x00", "image/vnd.microsoft.icon"),
)

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

_OOXML = (
    ("word/vbaproject.bin", "application/vnd.ms-word.document.macroEnabled.12"),
    (
        "word/document.xml",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ("xl/vbaproject.bin", "application/vnd.ms-excel.sheet.macroEnabled.12"),
    ("xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("xl/workbook.bin", "application/vnd.ms-excel.sheet.binary.macroEnabled.12"),
    ("ppt/vbaproject.bin", "application/vnd.ms-powerpoint.presentation.macroEnabled.12"),
    (
        "ppt/presentation.xml",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
)

# Text subtypes we accept from the file name (only when the bytes are text).
_TEXT_HINTS = {
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "md": "text/markdown",
    "markdown": "text/markdown",
}

_MIMETYPE_RE = re.compile(rb"^application/[a-z0-9.+-]{1,100}$")
_HEADER_LINE_RE = re.compile(r"^[!-9;-~]{1,76}:")
_KNOWN_MAIL_HEADERS = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "received",
        "return-path",
        "mime-version",
        "content-type",
        "delivered-to",
        "reply-to",
        "cc",
        "x-mailer",
    }
)

_TEXT_SNIFF_LEN = 64 * 1024


def sniff_type(data: bytes, filename: str = "") -> str:
    """Return a MIME type for ``data`` decided from its leading bytes.

    Never raises. Fallback is ``application/octet-stream``; empty input is
    ``application/x-empty``.
    """
    try:
        return _sniff(bytes(data), filename or "")
    except Exception:  # pragma: no cover - defensive: sniffing must never fail
        return OCTET_STREAM


def _sniff(data: bytes, filename: str) -> str:
    if not data:
        return EMPTY
    head = data[:64]
    if b"%PDF-" in data[:1024]:
        return "application/pdf"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(_ZIP_MAGICS):
        return _sniff_zip(data)
    if head.startswith(b"MZ"):
        return "application/x-msdownload"
    for magic, mime in _SIMPLE_MAGIC:
        if head.startswith(magic):
            return mime
    if head.startswith(b"BM") and len(data) >= 26:
        (size,) = struct.unpack("<I", data[2:6])
        if size == len(data) or data[14:18] in (
            b"\x28\x00\x00\x00",
            b"\x0c\x00\x00\x00",
            b"\x7c\x00\x00\x00",
        ):
            return "image/bmp"
    return _sniff_text(data, filename)


def _sniff_zip(data: bytes) -> str:
    names: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos[:2000]]
            if names and names[0] == "mimetype":
                info = infos[0]
                if info.file_size <= 200:
                    mt = zf.read(info).strip()
                    if _MIMETYPE_RE.match(mt):
                        return mt.decode("ascii")
    except Exception:
        names = _zip_local_names(data)
        first = _zip_first_stored_mimetype(data)
        if first:
            return first
    lowered = [n.lower() for n in names]
    lowset = set(lowered)
    for marker, mime in _OOXML:
        if marker in lowset:
            return mime
    if "meta-inf/manifest.mf" in lowset:
        return "application/java-archive"
    return "application/zip"


def _zip_first_stored_mimetype(data: bytes) -> str | None:
    """ODF/EPUB put an uncompressed ``mimetype`` member first; read it directly."""
    if len(data) < 30 or not data.startswith(b"PK\x03\x04"):
        return None
    (method,) = struct.unpack("<H", data[8:10])
    (csize,) = struct.unpack("<I", data[18:22])
    nlen, elen = struct.unpack("<HH", data[26:30])
    name = data[30 : 30 + nlen]
    if name != b"mimetype" or method != 0 or csize > 200:
        return None
    start = 30 + nlen + elen
    if start + csize > len(data):
        return None
    mt = data[start : start + csize].strip()
    if _MIMETYPE_RE.match(mt):
        return mt.decode("ascii")
    return None


def _zip_local_names(data: bytes, limit: int = 50) -> list[str]:
    """Walk local file headers (works on truncated archives)."""
    names: list[str] = []
    pos = 0
    while len(names) < limit and data.startswith(b"PK\x03\x04", pos) and pos + 30 <= len(data):
        (flags,) = struct.unpack("<H", data[pos + 6 : pos + 8])
        (csize,) = struct.unpack("<I", data[pos + 18 : pos + 22])
        nlen, elen = struct.unpack("<HH", data[pos + 26 : pos + 30])
        names.append(data[pos + 30 : pos + 30 + nlen].decode("utf-8", "replace"))
        if flags & 0x08:  # sizes in a data descriptor: cannot skip cheaply
            break
        pos += 30 + nlen + elen + csize
    return names


def _decode_text_prefix(data: bytes) -> str | None:
    """Decode ``data`` (or its first 64 KiB) as UTF-8; None if it is not UTF-8."""
    chunk = data[:_TEXT_SNIFF_LEN]
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte sequence cut by our own truncation is fine.
        if len(data) > len(chunk) and exc.start >= len(chunk) - 3:
            return chunk[: exc.start].decode("utf-8", "replace")
        return None


def _looks_like_mail(text: str) -> bool:
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[0].startswith("From ") and not _HEADER_LINE_RE.match(lines[0]):
        lines = lines[1:]  # mbox separator line
    count = 0
    known = 0
    for line in lines[:200]:
        if line == "":
            break
        if line[0] in " \t":
            if count == 0:
                return False
            continue
        if not _HEADER_LINE_RE.match(line):
            return False
        count += 1
        if line.split(":", 1)[0].strip().lower() in _KNOWN_MAIL_HEADERS:
            known += 1
    return count >= 2 and known >= 1


def _sniff_text(data: bytes, filename: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) and len(data) % 2 == 0:
        return "text/plain"
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if b"\x00" in body[:_TEXT_SNIFF_LEN]:
        return OCTET_STREAM
    text = _decode_text_prefix(body)
    if text is None:
        # Legacy 8-bit text (cp1252 etc.): no C0 controls other than whitespace/ESC.
        sample = body[:_TEXT_SNIFF_LEN]
        if any(b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D, 0x1B) for b in sample):
            return OCTET_STREAM
        text = sample.decode("latin-1")
    elif any(ord(c) < 0x20 and c not in "\t\n\x0c\r\x1b" for c in text[:4096]):
        return OCTET_STREAM
    stripped = text.lstrip()
    lower = stripped[:512].lower()
    if lower.startswith("<!doctype html") or lower.startswith("<html"):
        return "text/html"
    if lower.startswith("<?xml"):
        if "<svg" in lower:
            return "image/svg+xml"
        return "application/xml"
    if lower.startswith("<svg"):
        return "image/svg+xml"
    if lower.startswith("begin:vcalendar"):
        return "text/calendar"
    if lower.startswith("begin:vcard"):
        return "text/vcard"
    if _looks_like_mail(text):
        return "message/rfc822"
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return _TEXT_HINTS.get(ext, "text/plain")
