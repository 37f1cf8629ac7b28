"""sniff_type: magic bytes decide; a file name only refines text subtypes."""

from __future__ import annotations

import io
import zipfile

import pytest

from intake.core.sniff import sniff_type


def make_zip(entries: list[tuple[str, bytes]], stored_first: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (name, data) in enumerate(entries):
            method = zipfile.ZIP_STORED if (stored_first and i == 0) else zipfile.ZIP_DEFLATED
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


DOCX = make_zip(
    [("[Content_Types].xml", b"<Types/>"), ("_rels/.rels", b"<r/>"), ("word/document.xml", b"<w/>")]
)
XLSX = make_zip([("[Content_Types].xml", b"<Types/>"), ("xl/workbook.xml", b"<w/>")])
DOCM = make_zip(
    [
        ("[Content_Types].xml", b"<Types/>"),
        ("word/document.xml", b"<w/>"),
        ("word/vbaProject.bin", b"x"),
    ]
)
ODT = make_zip(
    [("mimetype", b"application/vnd.oasis.opendocument.text"), ("content.xml", b"<c/>")],
    stored_first=True,
)
PLAIN_ZIP = make_zip([("a.txt", b"hello")])


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "", "image/jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "", "image/gif"),
        (b"GIF87a\x01\x00\x01\x00", "", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "", "application/octet-stream"),
        (b"II*\x00\x08\x00\x00\x00", "", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "", "image/tiff"),
        (DOCX, "x.zip", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        (XLSX, "", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (DOCM, "harmless.docx", "application/vnd.ms-word.document.macroEnabled.12"),
        (ODT, "", "application/vnd.oasis.opendocument.text"),
        (ODT[:120], "", "application/vnd.oasis.opendocument.text"),  # truncated: local header read
        (ODT[:60], "", "application/zip"),  # mimetype member itself cut: don't guess
        (PLAIN_ZIP, "", "application/zip"),
        (DOCX[:40], "", "application/zip"),  # truncated, unrecognisable
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "old.doc", "application/x-ole-storage"),
        (b"{\\rtf1\\ansi hello}", "", "text/rtf"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "", "application/gzip"),
        (b"MZ\x90\x00\x03\x00\x00\x00", "", "application/x-msdownload"),
        (b"MZ\x90\x00\x03\x00\x00\x00", "invoice.pdf", "application/x-msdownload"),
        (b"\x7fELF\x02\x01\x01\x00", "", "application/x-executable"),
        ("Grüße, plain text\n".encode(), "", "text/plain"),
        (b"plain ascii", "", "text/plain"),
        (b"caf\xe9 cr\xe8me\r\n", "", "text/plain"),  # legacy 8-bit text
        (b"a,b\n1,2\n", "data.csv", "text/csv"),
        (b"a,b\n1,2\n", "data.CSV", "text/csv"),
        (b"\x00\x01a,b", "data.csv", "application/octet-stream"),  # name never makes binary text
        (b"a\x00b", "", "application/octet-stream"),
        (b"  <!DOCTYPE html><html><body>x", "", "text/html"),
        (b"\xef\xbb\xbf<html lang=en>", "", "text/html"),
        (b"<HTML>", "x.txt", "text/html"),
        (
            b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nbody",
            "",
            "message/rfc822",
        ),
        (
            b"From a@b Thu Jan  1 00:00:00 2026\nReceived: x\nFrom: a@b\n\nbody",
            "",
            "message/rfc822",
        ),
        (b"Note: this is not a mail\nit is prose\n", "", "text/plain"),
        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n", "", "text/calendar"),
        (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>", "", "image/svg+xml"),
        (bytes(range(256)), "", "application/octet-stream"),
        (b"", "empty.pdf", "application/x-empty"),
        (b"\xff\xfeh\x00i\x00", "", "text/plain"),
    ],
)
def test_sniff(data: bytes, filename: str, expected: str) -> None:
    assert sniff_type(data, filename) == expected


def test_long_utf8_text_cut_inside_a_character() -> None:
    data = ("a" * 65535 + "ü" * 10).encode()
    assert sniff_type(data) == "text/plain"


def test_never_raises_on_hostile_zip() -> None:
    for data in (
        b"PK\x03\x04",
        b"PK\x03\x04" + b"\xff" * 40,
        b"PK\x05\x06" + bytes(18),
        DOCX[:-10],
    ):
        assert sniff_type(data).startswith("application/")
