"""The ``email`` policies intake builds, flattens and parses mail with.

They are the standard library's ``default``, ``SMTP`` and ``SMTPUTF8``, with one
change: a header factory that makes each header class once. The standard
``HeaderRegistry`` builds a new class with ``type()`` every time a header is set,
parsed or counted (``header_max_count``), which was the largest single cost of
building a forward (about a tenth of the worker's CPU). The classes it builds
carry no state of their own, so one per registered kind gives the same headers;
``tests/core/test_mail_policies.py`` holds the two factories equal.
"""

from __future__ import annotations

import email.policy
from email.headerregistry import HeaderRegistry

__all__ = ["DEFAULT", "HEADER_FACTORY", "SMTP", "SMTPUTF8", "HeaderClasses"]


class HeaderClasses(HeaderRegistry):
    """``HeaderRegistry`` that makes the class for each kind of header once.

    The cache is keyed by the registered class (one of about twenty, or the default
    for every other name), so it stays that small whatever header names arrive.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type] = {}

    def __getitem__(self, name: str) -> type:
        kind = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(kind)
        if made is None:
            made = super().__getitem__(name)
            self._made[kind] = made
        return made


HEADER_FACTORY = HeaderClasses()
DEFAULT = email.policy.default.clone(header_factory=HEADER_FACTORY)
SMTP = email.policy.SMTP.clone(header_factory=HEADER_FACTORY)
SMTPUTF8 = email.policy.SMTPUTF8.clone(header_factory=HEADER_FACTORY)
