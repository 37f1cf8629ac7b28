"""The ``email`` policies intake builds, flattens and parses mail with.

They are the standard library's ``default``, ``SMTP`` and ``SMTPUTF8``, with two
changes that make building a forward cheaper and change nothing it contains
(``tests/core/test_mail_policies.py`` holds both equal to the standard policies):

- a header factory that makes each header class once. The standard
  ``HeaderRegistry`` builds a new class with ``type()`` every time a header is set,
  parsed or counted (``header_max_count``), about a tenth of the worker's CPU.
  The classes it builds carry no state of their own.
- the header objects of values that recur from message to message are parsed once
  and reused, as the standard policy reuses a header object it is given, and so are
  their folded forms: the MIME headers ``set_content`` sets and the markers of
  automatic mail, which hold no one's data, and the addresses a caller passes to
  :func:`recurring_address_header` (an agency's To). Header objects are immutable;
  the caches hold at most :data:`REUSED_HEADERS` of each kind.

No citizen's address or words are kept: To, From, Reply-To and Subject are parsed
each time unless the caller says the address is an agency's.
"""

from __future__ import annotations

import email.policy
import functools
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

__all__ = ["DEFAULT", "HEADER_FACTORY", "REUSED_HEADERS", "SMTP", "SMTPUTF8",
           "HeaderClasses", "Policy", "recurring_address_header"]


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

#: Header objects kept for reuse (least recently used first out).
REUSED_HEADERS = 256

# Headers whose values recur and hold no one's data: what set_content sets, and the
# markers of automatic mail. Not the address headers: a receipt's or a reply's To is a
# citizen's address (recurring_address_header is for the caller who knows it is not),
# and Subject, From and Reply-To carry the citizen's words, name or relay address.
_RECURRING = frozenset({"content-type", "content-transfer-encoding", "mime-version",
                        "auto-submitted", "x-auto-response-suppress"})


@functools.lru_cache(maxsize=REUSED_HEADERS)
def _reused_str(name: str, value: str) -> Any:
    return _foldable_once(HEADER_FACTORY(name, value))


@functools.lru_cache(maxsize=REUSED_HEADERS)
def _reused_address(name: str, display_name: str, username: str, domain: str) -> Any:
    return _foldable_once(HEADER_FACTORY(name, Address(display_name, username, domain)))


def recurring_address_header(name: str, address: Address) -> Any:
    """The header object for ``address``, parsed once and kept with its folded forms: for
    an address that recurs and is no one's personal data (an agency's), never a citizen's.
    Set it as the header's value (``message[name] = ...``)."""
    return _reused_address(name, address.display_name, address.username, address.domain)


def _foldable_once(header: Any) -> Any:
    """A reused header object also keeps its folded forms, one for each set of the policy
    settings folding depends on (:meth:`Policy.fold`)."""
    header._intake_folds = {}
    return header


if TYPE_CHECKING:
    _EmailPolicy = email.policy.EmailPolicy[EmailMessage]
else:  # not subscriptable at run time
    _EmailPolicy = email.policy.EmailPolicy


class Policy(_EmailPolicy):
    """``EmailPolicy`` that reuses the header objects of recurring values (above)."""

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if (self.header_factory is HEADER_FACTORY and type(value) is str
                and name.lower() in _RECURRING and len(value) <= 300
                and len(value.splitlines()) <= 1):
            return name, _reused_str(name, value)
        return super().header_store_parse(name, value)

    def fold(self, name: str, value: Any) -> str:
        return self._folded(value, str, lambda: super(Policy, self).fold(name, value))

    def fold_binary(self, name: str, value: Any) -> bytes:
        return self._folded(value, bytes, lambda: super(Policy, self).fold_binary(name, value))

    def _folded(self, value: Any, kind: type, fold: Any) -> Any:
        """A reused header object's folded form for these settings, folded once; every other
        value folded each time. A header object folds from its own name and parse tree."""
        folds = getattr(value, "_intake_folds", None)
        if folds is None:
            return fold()
        key = (kind, self.linesep, self.utf8, self.max_line_length, self.cte_type,
               self.refold_source)
        folded = folds.get(key)
        if folded is None:
            folded = folds[key] = fold()
        return folded


DEFAULT = Policy(header_factory=HEADER_FACTORY)
SMTP = DEFAULT.clone(linesep="\r\n")
SMTPUTF8 = SMTP.clone(utf8=True)
