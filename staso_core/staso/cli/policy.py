"""``staso policy``: check, test, replay and push policy files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from .common import KEY, URL, checked_url, client_for, fail, on_client, out, printable

policy_app = typer.Typer(help="Check, test, replay and push policies.", no_args_is_help=True)
TOOLS = typer.Option(None, "--tool", help="a tool name that exists (repeatable)")


def _counted(n: int, word: str) -> str:
    """``1 rule``, ``2 rules``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _load(file: Path) -> Any:
    from ..errors import PolicyError
    from ..plugins import make_plugin_manager
    from ..policy.discovery import load_any_policy

    try:
        return load_any_policy(file, make_plugin_manager())
    except PolicyError as exc:
        fail(str(exc))


def _recorded(url: str | None, key: str | None, notes: list[str], limit: int = 1000
              ) -> list[dict[str, Any]]:
    """Recorded decisions for ``check``: from the server at ``url``, else from the embedded
    store if there is one (a check never creates a store). Unreadable: a note, no failure."""
    from ..policy.recorded import recorded_decisions
    from ..settings import default_home, store_file

    if not url and not store_file(default_home()).exists():
        return []
    if url and not key:  # (a note, not client_for's failure as well)
        notes.append("the decision log was not read: no key for --url (--key or "
                     "STASO_API_KEY)")
        return []
    client = client_for(url, key)
    try:
        return recorded_decisions(client, limit=limit)
    except Exception as exc:  # a check still reports what it found without the log
        notes.append(f"the decision log was not read: {str(exc).strip().splitlines()[0]}")
        return []
    finally:
        client.shutdown()


def _check(file: Path, url: str | None, key: str | None, tools: list[str] | None,
           notes: bool = True) -> bool:
    """Print every problem of ``file``; True if it has no errors."""
    from ..plugins import make_plugin_manager
    from ..policy.check import check_policy_file
    from ..policy.discovery import collect_channels, collect_functions, collect_packs
    from ..policy.recorded import as_sample

    pm = make_plugin_manager()
    said: list[str] = []
    recorded = [as_sample(d) for d in _recorded(url, key, said)] if notes else []
    report = check_policy_file(file, packs=collect_packs(pm), functions=collect_functions(pm),
                               channels=collect_channels(pm), recorded=recorded,
                               tools=tools or ())
    # (warnings quote recorded tool names and calls: printable() shows control characters;
    # an error may hold the CEL parser's picture of a condition, on lines of its own)
    for error in report.errors:
        typer.echo("\n".join(printable(line) for line in str(error).split("\n")), err=True)
    for warning in report.warnings:
        typer.echo(f"warning: {printable(warning)}", err=True)
    if report.ok and report.policy is not None:  # (notes matter once nothing is wrong)
        for note in said + report.notes if notes else ():
            typer.echo(f"note: {printable(note)}", err=True)
        out.print(f"{file}: ok ({_counted(len(report.policy.rules), 'rule')}"
                  + (f", {_counted(len(report.warnings), 'warning')}" if report.warnings
                     else "") + ")", markup=False, highlight=False)
    return report.ok


@policy_app.command("check")
def policy_check(file: Path, tool: list[str] = TOOLS, url: str | None = URL,
                 key: str | None = KEY) -> None:
    """Report every problem of a policy (file:line: message, by line); exit 1 on errors.
    Conditions are also run on the policy's tests and the recorded calls, and tool names
    checked against the tools they name (warnings)."""
    url = checked_url(url)
    if not _check(file, url, key, tool):
        raise typer.Exit(1)


@policy_app.command("test")
def policy_test(file: Path) -> None:
    """Run the policy's tests (its ``tests:`` and ``*.test.yaml`` beside it)."""
    from ..errors import PolicyError
    from ..policy.testing import run_policy_tests

    policy = _load(file)
    try:
        outcomes = run_policy_tests(policy, file)
    except PolicyError as exc:
        fail(str(exc))
        return
    failed = [o for o in outcomes if not o.passed]
    for o in outcomes:
        mark = "[green]PASS[/green]" if o.passed else "[red]FAIL[/red]"
        out.print(f"{mark} {o.test.name}", markup=True, highlight=False, end="")
        out.print("" if o.passed else f" — {o.message}", markup=False, highlight=False)
    out.print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed", markup=False)
    if failed or not outcomes:
        if not outcomes:
            typer.echo("no policy tests found", err=True)
        raise typer.Exit(1)


@policy_app.command("replay")
def policy_replay(file: Path,
                  since: str = typer.Option("7d", help="how far back: 90s, 15m, 1h, 7d, 2w"),
                  limit: int = typer.Option(1000, min=1, help="at most this many calls"),
                  as_json: bool = typer.Option(False, "--json"),
                  url: str | None = URL, key: str | None = KEY) -> None:
    """Re-evaluate recorded calls under a candidate policy and show which outcomes change,
    by rule. Evaluation only: nothing is written, no escalation made."""
    from ..plugins import make_plugin_manager
    from ..policy.discovery import collect_functions
    from ..policy.recorded import recorded_decisions
    from ..policy.replay import replay
    from ..settings import default_home, store_file

    url = checked_url(url)
    policy = _load(file)
    if not url and not store_file(default_home()).exists():  # (nor is one made here)
        fail(f"no decision log to replay: no embedded store in {default_home()} "
             "(set STASO_HOME, or --url and --key for a server)")
    decisions = on_client(url, key, lambda c: recorded_decisions(c, since=since, limit=limit))
    report = replay(policy, collect_functions(make_plugin_manager()), decisions)
    if as_json:
        typer.echo(json.dumps({"since": since, **report.as_json()}, ensure_ascii=False))
        return
    def text(line: str) -> None:  # (recorded names and inputs: printable(), no markup)
        out.print(line, markup=False, highlight=False)

    text(f"replayed {report.replayed} recorded call(s) from the last {since} under "
         f"{printable(file)}: {report.changed} outcome(s) change")
    for change in report.changes:
        text(f"  {printable(change.before)} → {printable(change.after)}  "
             f"{printable(change.rule or '(no rule)')}  {change.count} call(s)")
        for ex in change.examples:
            text(f"      {printable(ex['id'])}  {printable(ex['tool'])}  "
                 f"{printable(ex['input'])}")
    if report.unguarded:
        text(f"skipped {report.unguarded} recorded execution(s) without a guard decision "
             "(reported through /v1/executions): no outcome to compare")
    text(f"note: recorded inputs are masked where redact_in_log masked them; "
         f"{report.masked} of these call(s) hold masked fields, and rules reading those "
         f"fields may replay differently")


@policy_app.command("push")
def policy_push(file: Path, url: str | None = URL, key: str | None = KEY) -> None:
    """Check a policy here, then install it on a server (admin key); prints its version."""
    import httpx

    if not url or not key:
        fail("staso policy push needs --url (or STASO_BASE_URL) and an admin --key "
             "(or STASO_API_KEY)")
        return
    url = checked_url(url) or url
    if not _check(file, None, None, None, notes=False):
        fail(f"{file} was not pushed: fix the errors above first")
    source = file.read_text(encoding="utf-8")
    try:
        answer = httpx.put(url.rstrip("/") + "/v1/policy", json={"source": source},
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)
    except httpx.HTTPError as exc:
        fail(f"could not reach the staso server at {url}: {exc}")
        return
    try:
        data = answer.json()
    except ValueError:
        data = {}
    detail = str(data.get("detail") if isinstance(data, dict) else "") or answer.text[:200]
    if answer.status_code in (401, 403):
        fail(f"the staso server refused the key ({answer.status_code}): pushing a policy "
             f"needs an admin key ({detail.strip().splitlines()[0] if detail.strip() else ''})")
    if answer.status_code >= 300:
        fail(f"the staso server did not take the policy ({answer.status_code}): "
             f"{detail.strip().splitlines()[0] if detail.strip() else ''}")
    out.print(f"pushed {file}: version {data.get('version')} "
              f"({_counted(len(data.get('rules') or []), 'rule')})", markup=False,
              highlight=False)
