"""``intake forms check``: validates the forms file; one line per problem, exit 1."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from intake.cli import cli
from tests.conftest import write_forms_file


def test_forms_check_accepts_the_packaged_and_a_custom_file(tmp_path: Path) -> None:
    runner = CliRunner()
    packaged = runner.invoke(cli, ["forms", "check"], env={"INTAKE_FORMS": ""})
    assert packaged.exit_code == 0, packaged.output
    assert "survey: survey, survey service-satisfaction (5 questions)" in packaged.output
    custom = runner.invoke(cli, ["forms", "check", str(write_forms_file(
        tmp_path, "http://127.0.0.1:9000"))])
    assert custom.exit_code == 0 and "http://127.0.0.1:9000" in custom.output


def test_forms_check_reports_each_problem(tmp_path: Path) -> None:
    bad = tmp_path / "forms.yaml"
    bad.write_text("version: 1\nconsent: {}\nforms:\n  - {slug: Contact Us, kind: contact}\n"
                   "  - {slug: poll, kind: poll, title: Poll}\n")
    result = CliRunner().invoke(cli, ["forms", "check", str(bad)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert f"{bad}: consent must map each language" in lines[0]
    assert any("forms[0].slug: must be a lower-case slug" in line for line in lines)
    assert any("form 'poll': kind must be one of contact, feedback, survey" in line
               for line in lines)
    assert lines[-1] == f"intake: {bad}: 3 problem(s)"
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(cli, ["forms", "check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "file not found" in missing.output
