"""The language a person wrote in, when it is clearly Spanish (pure; no I/O).

An e-mail carries no ``lang`` field: its words say it. A text is Spanish when
Spanish function words clearly outnumber English ones; anything short,
mixed or unclear stays English (the default). Only ``en`` and ``es`` exist.
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_LANGUAGE", "written_language"]

DEFAULT_LANGUAGE = "en"

_SPANISH = frozenset("""
    el la los las un una unos unas de del al que y en por para con sin sobre es son
    está están estoy hay fue muy pero como cuando donde porque mi mis su sus nuestro
    nuestra usted ustedes yo nosotros ellos este esta estos estas ese esa eso ya también
    gracias hola buenos buenas días señor señora favor saludos atentamente quiero puedo
    necesito tengo tiene han ha desde hasta entre no se lo le les me nos
""".split())
_ENGLISH = frozenset("""
    the a an of and to in is are was were be been for with without on at by from that
    this these those it its my your our their i you we they he she not but or as have
    has had do does did will would can could should please thank thanks hello dear
    regards sincerely want need there here what when where why how
""".split())
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def written_language(*texts: str, min_hits: int = 4) -> str:
    """``"es"`` when the texts are clearly Spanish, else ``"en"``.

    Clearly: at least ``min_hits`` Spanish function words, and at least twice as
    many as English ones (so an English message quoting a Spanish name stays English).
    """
    spanish = english = 0
    for text in texts:
        for word in _WORD.findall(text[:20_000].lower()):
            if word in _SPANISH:
                spanish += 1
            elif word in _ENGLISH:
                english += 1
    return "es" if spanish >= min_hits and spanish >= 2 * english else DEFAULT_LANGUAGE
