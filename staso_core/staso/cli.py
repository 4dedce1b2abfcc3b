"""The ``staso`` command (Typer + Rich). Escalation commands work on the embedded store
(``STASO_HOME``)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="staso: guard AI agents' tool calls.", no_args_is_help=True,
                  add_completion=False)
escalations_app = typer.Typer(help="List, show, approve and deny escalations.",
                              no_args_is_help=True)
policy_app = typer.Typer(help="Check and test policies.", no_args_is_help=True)
app.add_typer(escalations_app, name="escalations")
app.add_typer(policy_app, name="policy")
out = Console(soft_wrap=True)


def _service() -> Any:
    from .plugins import make_plugin_manager
    from .service import DecisionService, load_any_policy
    from .settings import Settings
    from .store import Store, sqlite_url

    settings = Settings.resolve()
    pm = make_plugin_manager(settings.plugins)
    return DecisionService(Store(sqlite_url(settings.home)), load_any_policy(None, pm), pm)


def _fail(message: str, code: int = 1) -> None:
    typer.echo(message, err=True)  # one unwrapped line: file:line: message
    raise typer.Exit(code)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


@escalations_app.command("list")
def escalations_list(status: Optional[str] = typer.Option(  # noqa: UP045
                         None, help="pending, approved, denied or timeout"),
                     as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """List escalations, newest first."""
    service = _service()
    items = service.list_escalations(status=status)
    if as_json:
        print(json.dumps([e.to_dict() for e in items], indent=2))
        return
    table = Table("id", "status", "tool", "rule", "agent", "age")
    now = time.time()
    for e in items:
        table.add_row(e.id, e.status, e.tool_name, e.rule_name or "", e.agent_name,
                      _age(now - e.created_at))
    out.print(table)


@escalations_app.command("show")
def escalations_show(escalation_id: str,
                     as_json: bool = typer.Option(False, "--json", help="JSON output")) -> None:
    """Show one escalation with its full input."""
    from .errors import EscalationNotFound

    try:
        esc = _service().get_escalation(escalation_id)
    except EscalationNotFound as exc:
        _fail(str(exc))
        return
    if as_json:
        print(json.dumps(esc.to_dict(), indent=2))
        return
    for key, value in esc.to_dict().items():
        if isinstance(value, dict):
            value = json.dumps(value, indent=2)
        out.print(f"[bold]{key}[/bold]: ", end="", markup=True)
        out.print(value, markup=False, highlight=False)


def _resolve(escalation_id: str, status: str, by: str, comment: str | None,
             modified: dict[str, Any] | None) -> None:
    from .errors import EscalationConflict, EscalationNotFound

    service = _service()
    try:
        esc = service.resolve(escalation_id, status=status, by=by, comment=comment,
                              modified_input=modified)
    except (EscalationNotFound, EscalationConflict) as exc:
        _fail(str(exc))
        return
    finally:
        service.close()
    out.print(f"{esc.id} {esc.status} by {esc.resolved_by}", markup=False, highlight=False)


@escalations_app.command("approve")
def escalations_approve(escalation_id: str, by: str = typer.Option(..., help="who approves"),
                        comment: Optional[str] = typer.Option(None),  # noqa: UP045
                        input: Optional[str] = typer.Option(  # noqa: UP045
                            None, "--input", help="edited tool input as a JSON object")) -> None:
    """Approve an escalation (optionally with an edited input)."""
    modified = None
    if input is not None:
        try:
            modified = json.loads(input)
        except json.JSONDecodeError as exc:
            _fail(f"--input is not valid JSON: {exc}")
        if not isinstance(modified, dict):
            _fail("--input must be a JSON object of tool arguments")
    _resolve(escalation_id, "approved", by, comment, modified)


@escalations_app.command("deny")
def escalations_deny(escalation_id: str, by: str = typer.Option(..., help="who denies"),
                     comment: Optional[str] = typer.Option(None)) -> None:  # noqa: UP045
    """Deny an escalation; the comment reaches the agent."""
    _resolve(escalation_id, "denied", by, comment, None)


def _load(file: Path) -> Any:
    from .errors import PolicyError
    from .plugins import make_plugin_manager
    from .service import load_any_policy

    try:
        return load_any_policy(file, make_plugin_manager())
    except PolicyError as exc:
        _fail(str(exc))


@policy_app.command("check")
def policy_check(file: Path) -> None:
    """Load a policy; exit 1 with file:line: message on any error."""
    policy = _load(file)
    out.print(f"{file}: ok ({len(policy.rules)} rules)", markup=False, highlight=False)


@policy_app.command("test")
def policy_test(file: Path) -> None:
    """Run the policy's tests (its ``tests:`` and ``*.test.yaml`` beside it)."""
    from .errors import PolicyError
    from .policy.testing import run_policy_tests

    policy = _load(file)
    try:
        outcomes = run_policy_tests(policy, file)
    except PolicyError as exc:
        _fail(str(exc))
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


@app.command()
def demo(yes: bool = typer.Option(False, "--yes", help="approve automatically, unattended")
         ) -> None:
    """Run a scripted refund agent against the embedded guard."""
    from .demo import run_demo

    raise typer.Exit(run_demo(auto_approve=yes))


def main() -> None:  # the console script
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
