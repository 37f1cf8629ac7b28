"""What the citizen receives by e-mail, in their language: a plain-text and an HTML part.

Each message is two templates in ``templates/email/`` (``<name>.txt`` and
``<name>.html``), rendered with the entry's language (``entries.language``)
from the same catalogues as the pages (``intake/translations``). The HTML
part is autoescaped: nothing the citizen or an agency wrote becomes markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
from babel.support import NullTranslations, Translations

from intake.core.forms import LANGUAGES

__all__ = ["CitizenMail", "N_", "render_citizen", "translate"]

_ROOT = resources.files("intake")


def N_(text: str) -> str:  # noqa: N802 - the gettext convention for "translate later"
    """Mark ``text`` for the catalogue; :func:`translate` translates it when sending."""
    return text


@lru_cache(maxsize=4)
def _translations(lang: str) -> NullTranslations:
    if lang == "en":
        return NullTranslations()
    return Translations.load(str(_ROOT / "translations"), [lang])


def translate(text: str, lang: str, **values: Any) -> str:
    """``text`` (marked with :func:`N_`) in ``lang``, with ``%(name)s`` values filled in."""
    done = _translations(lang if lang in LANGUAGES else "en").ugettext(text)
    return done % values if values else done


@lru_cache(maxsize=8)
def _environment(lang: str, html: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_ROOT / "templates" / "email")),
        autoescape=html,  # noqa: S701 - the text part is plain text, the HTML part escaped
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(_translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


@dataclass(frozen=True)
class CitizenMail:
    text: str
    html: str


def render_citizen(name: str, lang: str, **context: Any) -> CitizenMail:
    """The message ``name`` in ``lang`` (``en`` if unknown): both parts, same context."""
    lang = lang if lang in LANGUAGES else "en"
    return CitizenMail(
        text=_environment(lang, False).get_template(f"{name}.txt").render(lang=lang, **context),
        html=_environment(lang, True).get_template(f"{name}.html").render(lang=lang, **context))
