"""``intake rules check|explain|replay``: validate, explain and replay the routing rules."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from intake.cli.common import (
    EXIT_FAILURE,
    fail,
    open_runtime,
    progress_line,
    settings_or_fail,
)

# A record number as the app shows it (PREFIX-YEAR-NUMBER), with or without "#" or "[#...]".
_RECORD_NUMBER = re.compile(r"^\[?#?([A-Za-z0-9]{1,16}-\d{4}-\d{1,12})\]?$")


@click.group()
def rules() -> None:
    """Routing rules: check, explain, replay."""


def _rules_or_exit(path: Path) -> Any:
    """Load a rules file, or print its `file:line: message` errors and exit 1."""
    from intake.core.routing import RulesError, load_rules_file

    try:
        return load_rules_file(path)
    except RulesError as exc:
        for line in str(exc).splitlines():
            click.echo(line, err=True)
        sys.exit(EXIT_FAILURE)


def _rules_file(path: str | None) -> Path:
    if path:
        return Path(path)
    return settings_or_fail().rules_path


@rules.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
def rules_check(file: str | None) -> None:
    """Validate a rules file and run its embedded tests."""
    path = _rules_file(file)
    ruleset = _rules_or_exit(path)
    results = ruleset.run_tests()
    failed = [r for r in results if not r.passed]
    for result in failed:
        click.echo(f"{path}:{result.line}: test '{result.name}' failed: {result.message}",
                   err=True)
    summary = (f"{path}: {len(ruleset.rule_ids)} rules, {len(ruleset.agencies)} agencies, "
               f"{len(results) - len(failed)} of {len(results)} tests passed")
    click.echo(summary)
    sys.exit(EXIT_FAILURE if failed else 0)


@rules.command("explain")
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False),
              help="Rules file (default: INTAKE_RULES).")
@click.option("--eml", "eml", type=click.Path(exists=True, dir_okay=False),
              help="Explain the routing of this e-mail file.")
@click.option("--channel", type=click.Choice(["web", "email"]), default="web", show_default=True)
@click.option("--form", default=None, help="Form slug (contact, feedback, survey, ...).")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE", help="A form field.")
@click.option("--subject", default="")
@click.option("--body", default="")
@click.option("--sender", default=None)
@click.option("--recipient", default=None, help="Mailbox the message arrived at.")
@click.option("--attachment", "attachments", multiple=True, help="An attachment file name.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.argument("target", required=False)
def rules_explain(rules_path: str | None, eml: str | None, channel: str, form: str | None,
                  fields: tuple[str, ...], subject: str, body: str, sender: str | None,
                  recipient: str | None, attachments: tuple[str, ...], as_json: bool,
                  target: str | None) -> None:
    """Show which rule routes a submission and why.

    TARGET is a stored entry's record number (e.g. EX-2026-000123: the rules are
    replayed on the stored entry and shown beside what was stored for it) or an .eml
    file; without it the submission is given as options.
    """
    from intake.core.routing import Submission

    path = _rules_file(rules_path)
    ruleset = _rules_or_exit(path)
    source = eml
    if target is not None:
        number = _RECORD_NUMBER.match(target.strip())
        if number is not None and not Path(target).is_file():
            _explain_record(ruleset, path, number.group(1).upper(), as_json)
            return
        if not Path(target).is_file():
            raise click.BadParameter(
                f"neither a record number (like EX-2026-000123) nor a file: {target!r}",
                param_hint="TARGET")
        source = target
    if source:
        submission = Submission.from_email_bytes(Path(source).read_bytes(), recipient=recipient)
    else:
        parsed: dict[str, str] = {}
        for item in fields:
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise click.BadParameter(f"expected NAME=VALUE, got {item!r}",
                                         param_hint="--field")
            parsed[name.strip()] = value
        submission = Submission(channel=channel, form=form, subject=subject, body=body,
                                sender=sender, recipient=recipient, fields=parsed,
                                attachments=attachments)
    decision = ruleset.decide(submission)
    if as_json:
        click.echo(json.dumps(decision.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(decision.explain())


def _explain_record(ruleset: Any, path: Path, record_number: str, as_json: bool) -> None:
    """``rules explain RECORD_NUMBER``: the rules replayed on the stored entry, beside the
    decisions stored for it."""
    from intake.services.routing import StoredDecision, explain_entry

    settings = settings_or_fail()
    with open_runtime(settings) as runtime, runtime.db.session() as session:
        found = explain_entry(session, ruleset, record_number)
    if found is None:
        fail(f"no entry with record number {record_number}")
    if as_json:
        click.echo(json.dumps({"rules_file": str(path), **found.to_dict()}, indent=2,
                              ensure_ascii=False))
        return

    def line(what: str, d: StoredDecision) -> str:
        by = f"staff member {d.actor.split(':', 1)[1]}" if d.by_staff and d.actor else (
            f"rule '{d.decided_by}'" if d.decided_by else "the default agency")
        cc = f", cc {', '.join(d.cc)}" if d.cc else ""
        return (f"{what}: {d.route_to}{cc} (by {by}, {d.decided_at:%Y-%m-%d %H:%M} UTC, "
                f"rules sha256 {d.rules_sha256[:12]})")

    click.echo(f"{found.record_number}: now with {found.agency_now or '(not routed)'}")
    if found.rules_decision is not None:
        click.echo(line("stored rules decision", found.rules_decision))
    else:
        click.echo("stored rules decision: none")
    if found.latest is not None and found.latest.by_staff:
        click.echo(line("rerouted by staff", found.latest))
    click.echo(f"replayed with {path} (sha256 {ruleset.sha256[:12]}):")
    click.echo("  " + found.replayed.explain().replace("\n", "\n  "))
    verdict = "agrees with" if found.agrees else "differs from"
    click.echo(f"the replayed decision {verdict} the stored rules decision")


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not a date (YYYY-MM-DD): {value!r}",
                                 param_hint="--since") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@rules.command("replay")
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False),
              help="Candidate rules file (default: the current one).")
@click.option("--since", default=None, help="Only entries received on or after this date.")
@click.option("--examples", default=5, show_default=True, type=click.IntRange(0, 100))
@click.option("--json", "as_json", is_flag=True)
def rules_replay(rules_path: str | None, since: str | None, examples: int,
                 as_json: bool) -> None:
    """Re-route stored entries with a (candidate) rules file and report what would move."""
    from intake.services.routing import replay

    settings = settings_or_fail()
    since_at = _parse_since(since)
    path = Path(rules_path) if rules_path else settings.rules_path
    ruleset = _rules_or_exit(path)
    with open_runtime(settings) as runtime, runtime.db.session() as session:
        report = replay(session, ruleset, since=since_at, examples_per_move=examples,
                        progress=progress_line("replayed"))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    click.echo(f"{report.total} entries replayed with {path} (sha256 {ruleset.sha256[:12]}): "
               f"{report.moved} would move, {report.unchanged} unchanged "
               "(compared with what the rules decided)")
    for move in report.to_dict()["moves"]:
        shown = ", ".join(move["examples"])
        click.echo(f"  {move['from']} -> {move['to']}: {move['count']}"
                   + (f" (e.g. {shown})" if shown else ""))
    click.echo(f"{report.rerouted} entries rerouted by staff (not counted as moves)"
               + (":" if report.rerouted else ""))
    for item in report.rerouted_entries:
        click.echo(f"  {item['record_number']}: rules decided {item['rules_decided']}, "
                   f"now with {item['agency_now']}, rules now say {item['rules_now']}")
    if report.rerouted > len(report.rerouted_entries):
        click.echo(f"  ... and {report.rerouted - len(report.rerouted_entries)} more")
