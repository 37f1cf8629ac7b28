"""HTML → text (stdlib ``html.parser``) and HTML sanitising for display (nh3)."""

# Must never raise on hostile input: broad excepts are deliberate.
# ruff: noqa: BLE001, S110

from __future__ import annotations

import re
from html import escape as html_escape
from html.parser import HTMLParser

import nh3

__all__ = ["html_to_text", "sanitize_html"]

_BLOCK = frozenset(
    {
        "p",
        "div",
        "br",
        "tr",
        "table",
        "ul",
        "ol",
        "li",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "pre",
        "hr",
        "section",
        "article",
        "header",
        "footer",
        "address",
        "dd",
        "dt",
        "dl",
        "form",
        "fieldset",
        "figure",
        "figcaption",
        "main",
        "nav",
        "aside",
        "center",
        "tbody",
        "thead",
        "tfoot",
        "caption",
        "title",
    }
)
_DROP = frozenset(
    {"script", "style", "head", "noscript", "template", "object", "embed", "iframe", "svg", "math"}
)
_VOID = frozenset(
    {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "wbr"}
)
_SAFE_LINK_RE = re.compile(r"^(https?:|mailto:|tel:)", re.I)
# Blocks that stand apart by a blank line (others start on a new line).
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "pre", "dl"}
)


class _TextConverter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.drop_depth = 0
        self.pre_depth = 0
        self.links: list[tuple[str, int]] = []  # (href, index in parts where link text starts)

    def _newline(self, n: int = 1) -> None:
        self.parts.append("\n" * n)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROP:
            if tag not in _VOID:
                self.drop_depth += 1
            return
        if self.drop_depth:
            return
        if tag == "pre":
            self.pre_depth += 1
        if tag in _PARAGRAPH:
            self._newline(2)
        elif tag in _BLOCK:
            self._newline()
        if tag == "li":
            self.parts.append("- ")
        elif tag in ("td", "th"):
            self.parts.append("\t")
        elif tag == "a":
            href = ""
            for k, v in attrs:
                if k == "href" and v:
                    href = v.strip()
            self.links.append((href, len(self.parts)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROP:
            if self.drop_depth and tag not in _VOID:
                self.drop_depth -= 1
            return
        if self.drop_depth:
            return
        if tag == "pre" and self.pre_depth:
            self.pre_depth -= 1
        if tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.parts[start:]).strip()
            if href and _SAFE_LINK_RE.match(href):
                shown = href[7:] if href.lower().startswith("mailto:") else href
                if label and label != href and label != shown:
                    self.parts.append(f" ({shown})")
                elif not label:
                    self.parts.append(shown)
        if tag in _PARAGRAPH:
            self._newline(2)
        elif tag in _BLOCK and tag not in ("li", "tr", "dt", "dd", "br"):
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.drop_depth:
            return
        if self.pre_depth:
            self.parts.append(data.replace("\r\n", "\n"))
        else:
            text = re.sub(r"[ \t\r\n\f]+", " ", data)
            if self._at_line_start():
                text = text.lstrip(" ")
            if text:
                self.parts.append(text)

    def _at_line_start(self) -> bool:
        for p in reversed(self.parts):
            if p:
                return p.endswith(("\n", "\t", "- "))
        return True

    def text(self) -> str:
        raw = "".join(self.parts).replace("\xa0", " ")
        lines = [re.sub(r"[ \t]+$", "", ln) for ln in raw.split("\n")]
        out = "\n".join(lines)
        out = re.sub(r"\n{3,}", "\n\n", out)
        return out.strip("\n").rstrip()


def html_to_text(html: str) -> str:
    """Convert HTML to readable plain text. Never raises."""
    conv = _TextConverter()
    try:
        conv.feed(html)
        conv.close()
    except Exception:  # html.parser is lenient; be defensive anyway
        pass
    return conv.text()


_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS)
_ATTRIBUTES: dict[str, set[str]] = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
# Images: keep the element (alt text, layout) but never a source: remote images
# are tracking pixels, cid: images are served separately as attachments.
_ATTRIBUTES["img"] = {"alt", "title", "width", "height"}
_ATTRIBUTES.setdefault("a", set()).update({"href", "title"})


# html5ever/ammonia is quadratic in nesting depth (40k nested <div> ≈ 4 s).
_MAX_UNCLOSED_TAGS = 10_000
_START_TAG_RE = re.compile(r"<[A-Za-z]")
_END_TAG_RE = re.compile(r"</[A-Za-z]")


def sanitize_html(html: str) -> str:
    """nh3-sanitise HTML for display: no script/style, no on* attributes, no
    javascript:/data:/cid: URLs, no image sources.

    Pathologically nested markup is not given to nh3: it is shown as escaped
    converted text instead.
    """
    unclosed = len(_START_TAG_RE.findall(html)) - len(_END_TAG_RE.findall(html))
    if unclosed > _MAX_UNCLOSED_TAGS:
        return "<pre>" + html_escape(html_to_text(html)) + "</pre>"
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel"},
        clean_content_tags={"script", "style", "title", "noscript", "template"},
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    ).strip()
