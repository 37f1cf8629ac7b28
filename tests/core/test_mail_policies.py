"""intake's ``email`` policies: the standard ones with a header factory that makes each
header class once. Held equal to the standard factory on hostile values, and bounded."""

from __future__ import annotations

import email.policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from intake.core.mail import policies
from intake.core.mail.policies import HEADER_FACTORY, HeaderClasses

_STANDARD = HeaderRegistry()
_NAMES = sorted(_STANDARD.registry) + ["X-Intake-Record", "Subject", "X-Anything", "FROM"]

# Values as they arrive: encoded words (some hiding CR/LF), quotes, angle brackets,
# groups, commas, non-ASCII, controls.
_PIECES = st.sampled_from([
    "=?UTF-8?Q?Hi=0D=0AX-Injected:_x?=", "=?utf-8?b?w6k=?=", "=?iso-8859-1?q?caf=E9?=",
    '"', "\\", "<", ">", "@", ",", ";", ":", "(", ")", " ", "\t", "\r\n", "\u2028",
    "a@example.org", "Ana María", "group:", "x" * 80, "\x00", "é", "日本",
])
_VALUES = st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=8).map("".join)


def _describe(header: object) -> tuple[object, ...]:
    """Everything a header object shows: its text, kind, defects and folded form."""
    try:
        folded = header.fold(policy=email.policy.SMTP)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - the same failure must happen on both sides
        folded = ("raises", type(exc))
    return (str(header), type(header).__mro__[1:], header.name,  # type: ignore[attr-defined]
            [(type(d), str(d)) for d in header.defects],  # type: ignore[attr-defined]
            folded)


@settings(max_examples=600, deadline=None)
@given(name=st.sampled_from(_NAMES), value=_VALUES)
def test_a_header_is_the_same_as_the_standard_factory_makes(name: str, value: str) -> None:
    def made(factory: HeaderRegistry) -> tuple[object, ...]:
        try:
            return _describe(factory(name, value))
        except Exception as exc:  # noqa: BLE001 - compared, not hidden
            return ("raises", type(exc), str(exc))

    assert made(HEADER_FACTORY) == made(_STANDARD)


_RECURRING = ["To", "Content-Type", "content-transfer-encoding", "MIME-Version",
              "Auto-Submitted", "X-Auto-Response-Suppress"]
_ADDRESSES = st.builds(lambda name, user, domain: (name, user, domain),
                       _VALUES, st.sampled_from(["ana", "a.b+c", '"odd user"', "x" * 70]),
                       st.sampled_from(["example.org", "dot.state.example.gov"]))


@settings(max_examples=600, deadline=None)
@given(name=st.sampled_from(_RECURRING + ["Subject", "From"]), value=_VALUES,
       address=_ADDRESSES, as_address=st.booleans(), again=st.booleans())
def test_a_set_header_is_the_same_as_the_standard_policy_stores(
        name: str, value: str, address: tuple[str, str, str], as_address: bool,
        again: bool) -> None:
    from email.headerregistry import Address

    def stored(policy: Any) -> tuple[object, ...]:
        try:
            given = Address(*address) if as_address else value
            stored_name, header = policy.header_store_parse(name, given)
            if again:  # the second time it may come from the cache
                stored_name, header = policy.header_store_parse(name, given)
            # Folded as flattening does, under the settings folding depends on; each twice
            # (the second may be a kept fold).
            folds = [folder(stored_name, header)
                     for variant in (policy, policy.clone(utf8=True),
                                     policy.clone(max_line_length=30),
                                     policy.clone(cte_type="8bit", linesep="\n"))
                     for folder in (variant.fold, variant.fold_binary) for _ in (1, 2)]
            return (stored_name, *_describe(header), folds)
        except Exception as exc:  # noqa: BLE001 - compared, not hidden
            return ("raises", type(exc), str(exc))

    assert stored(policies.SMTP) == stored(email.policy.SMTP)


def test_each_kind_of_header_gets_one_class_whatever_names_arrive() -> None:
    factory = HeaderClasses()
    assert factory["Subject"] is factory["subject"] is factory["SUBJECT"]
    assert factory["To"] is not factory["Subject"]
    for n in range(5000):
        factory(f"X-Hostile-{n}", "value")
    assert factory["X-Hostile-1"] is factory["X-Other"]
    assert len(factory._made) <= len(set(factory.registry.values())) + 1


def test_the_policies_are_the_standard_ones_but_for_the_factory() -> None:
    for ours, standard in ((policies.DEFAULT, email.policy.default),
                           (policies.SMTP, email.policy.SMTP),
                           (policies.SMTPUTF8, email.policy.SMTPUTF8)):
        assert isinstance(ours, email.policy.EmailPolicy)
        assert ({k: v for k, v in vars(ours).items() if k != "header_factory"}
                == {k: v for k, v in vars(standard).items() if k != "header_factory"})
        assert ours.header_factory is HEADER_FACTORY


def test_a_message_built_with_either_factory_flattens_to_the_same_bytes() -> None:
    def built(policy: Any) -> bytes:
        msg = EmailMessage(policy=policy)
        msg["From"] = "Ana María <ana@example.org>"
        msg["To"] = "agency@example.gov"
        msg["Subject"] = "Solicitud: caf\u00e9 " + "palabra " * 30
        msg["Message-ID"] = "<1@intake.example>"
        msg.set_content("Hola\n")
        return msg.as_bytes()

    assert built(policies.SMTP) == built(email.policy.SMTP)


@settings(max_examples=300, deadline=None)
@given(address=_ADDRESSES, again=st.booleans())
def test_an_agency_address_header_is_the_same_as_the_standard_one(
        address: tuple[str, str, str], again: bool) -> None:
    from email.headerregistry import Address

    def made(ours: bool) -> tuple[object, ...]:
        try:
            given = Address(*address)
            if ours:
                header = policies.recurring_address_header("To", given)
                if again:
                    header = policies.recurring_address_header("To", given)
                stored_name, header = policies.SMTP.header_store_parse("To", header)
                policy: Any = policies.SMTP
            else:
                stored_name, header = email.policy.SMTP.header_store_parse("To", given)
                policy = email.policy.SMTP
            folds = [folder(stored_name, header)
                     for variant in (policy, policy.clone(utf8=True),
                                     policy.clone(max_line_length=30))
                     for folder in (variant.fold, variant.fold_binary) for _ in (1, 2)]
            return (stored_name, *_describe(header), folds)
        except Exception as exc:  # noqa: BLE001 - compared, not hidden
            return ("raises", type(exc), str(exc))

    assert made(True) == made(False)


def test_no_citizen_address_or_words_are_kept_for_reuse() -> None:
    """A receipt to a citizen: its To, From, Reply-To and Subject are parsed for this
    message only; what is kept is the MIME headers and the automatic-mail markers."""
    from intake.core.mail.headers import header_text, mailbox, new_message

    policies._reused_address.cache_clear()
    policies._reused_str.cache_clear()
    msg = new_message()
    msg["From"] = mailbox("Ana María via intake", "intake@state.example.gov")
    msg["To"] = mailbox("", "ana.citizen@example.org")
    msg["Reply-To"] = mailbox("", "reply+tok123@relay.example.gov")
    msg["Subject"] = header_text("[EX-2026-000001] Mi calle, mi número 555-0100")
    msg["Auto-Submitted"] = "auto-replied"
    msg.set_content("Hola Ana, recibimos su mensaje.\n")
    msg.add_alternative("<p>Hola Ana</p>", subtype="html")
    raw = msg.as_bytes()

    kept = {name.lower() for part in msg.walk() for name, header in part._headers
            if hasattr(header, "_intake_folds")}
    assert kept <= {"content-type", "content-transfer-encoding", "mime-version",
                    "auto-submitted"}
    assert "auto-submitted" in kept  # the reuse is on: the test can fail
    assert policies._reused_address.cache_info().currsize == 0
    assert b"ana.citizen@example.org" in raw
