"""The language of a page: chosen once, then used for everything the person sees.

A form's page takes the form's ``lang`` (else ``?lang=``, else ``Accept-Language``);
a submitter's status page takes the language stored on the entry; an error
page takes the request's (the form's ``lang`` field if the request was a form
post, else ``?lang=``, else ``Accept-Language``). :func:`use_language` switches the
page's translations; :func:`local_time` writes a time in the state's time zone
in that language (Babel).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import g, request
from flask_babel import get_translations, refresh

from intake.core.forms import LANGUAGES

__all__ = ["TRANSLATIONS_KEY", "local_time", "page_translations", "request_language",
           "use_language"]

TRANSLATIONS_KEY = "intake_translations"


def page_translations() -> Any:
    """This request's translations, looked up on first use (:func:`use_language` forgets
    them)."""
    translations = g.get(TRANSLATIONS_KEY)
    if translations is None:
        translations = get_translations()
        setattr(g, TRANSLATIONS_KEY, translations)
    return translations


def use_language(lang: str) -> str:
    """Render the rest of this request in ``lang`` (``en`` if it is not one we have)."""
    chosen = lang if lang in LANGUAGES else "en"
    g.page_lang = chosen
    refresh()
    g.pop(TRANSLATIONS_KEY, None)
    return chosen


def request_language() -> str:
    """The language this request asks for: a language already chosen for the page, a
    form post's ``lang``, ``?lang=``, else ``Accept-Language`` (``en`` by default)."""
    for chosen in (g.get("page_lang"), g.get("forms_lang")):
        if chosen in LANGUAGES:
            return str(chosen)
    asked = request.args.get("lang", "")
    if asked in LANGUAGES:
        return asked
    if request.method == "POST" and request.mimetype in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            posted = request.form.getlist("lang")
        except Exception:  # noqa: BLE001 - a body too large or unreadable: not a language
            posted = []
        if posted and posted[0] in LANGUAGES:
            return posted[0]
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"


@lru_cache(maxsize=16)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_time(at: datetime, lang: str, zone: str, *, with_time: bool = True) -> str:
    """``at`` in the time zone ``zone``, written the way ``lang`` writes dates ("March 3,
    2026 at 2:05 PM EST" / "3 de marzo de 2026, 14:05 (EST)")."""
    if with_time:
        return format_datetime(at, "long" if lang == "en" else "d 'de' MMMM 'de' y, HH:mm (zzz)",
                               tzinfo=_zone(zone), locale=lang)
    return format_datetime(at, "MMMM d, y" if lang == "en" else "d 'de' MMMM 'de' y",
                           tzinfo=_zone(zone), locale=lang)
