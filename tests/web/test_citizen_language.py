"""The Spanish catalogue is complete and compiled.

Every message id the extractor finds (``pybabel extract`` over
``intake/translations/babel.cfg``, which names every module and template the
public sees) has a Spanish translation that is neither empty nor fuzzy, with
the same ``%(name)s`` placeholders; the committed ``messages.mo`` is what
compiling the committed ``messages.po`` gives (``pybabel compile -d
intake/translations`` after every change).
"""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

REPO = Path(__file__).resolve().parents[2]
TRANSLATIONS = REPO / "intake" / "translations"
PO = TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.po"
MO = TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.mo"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _extract(tmp_path: Path) -> list[str]:
    pot = tmp_path / "messages.pot"
    CommandLineInterface().run([
        "pybabel", "-q", "extract", "-F", str(TRANSLATIONS / "babel.cfg"), "-k", "_l",
        "-k", "N_", "-o", str(pot), "--omit-header", str(REPO)])
    with pot.open("rb") as f:
        return [str(m.id) for m in read_po(f) if m.id]


def test_every_message_the_public_sees_has_a_spanish_translation(tmp_path: Path) -> None:
    ids = _extract(tmp_path)
    # The extractor read the citizen's pages and mail (not an empty configuration).
    for expected in ("What has happened so far", "We received your message",
                     "Page not found", "How do you want to send it?", "Record number"):
        assert expected in ids
    with PO.open("rb") as f:
        catalogue = read_po(f)
    missing, broken = [], []
    for message_id in ids:
        message = catalogue.get(message_id)
        if message is None or not message.string or message.fuzzy:
            missing.append(message_id)
        elif set(PLACEHOLDER.findall(message_id)) != set(PLACEHOLDER.findall(
                str(message.string))):
            broken.append(message_id)
    assert missing == [], f"{len(missing)} message(s) without Spanish: {missing[:10]}"
    assert broken == [], f"placeholders differ: {broken[:10]}"


def test_the_compiled_catalogue_matches_the_po_file() -> None:
    with PO.open("rb") as f:
        source = {m.id: m.string for m in read_po(f) if m.id and m.string and not m.fuzzy}
    with MO.open("rb") as f:
        compiled = {m.id: m.string for m in read_mo(f) if m.id}
    assert compiled == source, "run: pybabel compile -d intake/translations"
