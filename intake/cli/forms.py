"""``intake forms check [FILE]``: validate a forms file and the surveys it names."""

from __future__ import annotations

from pathlib import Path

import click

from intake.cli.common import fail, settings_or_fail


@click.group("forms")
def forms() -> None:
    """Public contact, feedback and survey forms."""


@forms.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
def check(file: Path | None) -> None:
    """Validate FILE (default: INTAKE_FORMS, else the packaged forms.yaml)."""
    from intake.core.forms import FormsConfigError
    from intake.services.forms import load_forms_file, packaged_forms_path

    path = file or settings_or_fail().forms_path or packaged_forms_path()
    if not path.is_file():
        fail(f"{path}: file not found")
    try:
        config = load_forms_file(path)
    except FormsConfigError as exc:
        for line in exc.errors:
            click.echo(line, err=True)
        fail(f"{path}: {len(exc.errors)} problem(s)")
    for form in config.forms.values():
        extra = f", survey {form.survey.id} ({len(form.survey.questions)} questions)" \
            if form.survey else ""
        origins = ", ".join(form.allowed_origins) or "no other site"
        click.echo(f"{form.slug}: {form.kind}{extra}; embeddable by {origins}")
    click.echo(f"{path}: ok ({len(config.forms)} forms)")
