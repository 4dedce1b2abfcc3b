"""``staso policy``: check and test policy files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .common import fail, out

policy_app = typer.Typer(help="Check and test policies.", no_args_is_help=True)

def _load(file: Path) -> Any:
    from ..errors import PolicyError
    from ..plugins import make_plugin_manager
    from ..policy.discovery import load_any_policy

    try:
        return load_any_policy(file, make_plugin_manager())
    except PolicyError as exc:
        fail(str(exc))


@policy_app.command("check")
def policy_check(file: Path) -> None:
    """Load a policy; exit 1 with file:line: message on any error."""
    policy = _load(file)
    out.print(f"{file}: ok ({len(policy.rules)} rules)", markup=False, highlight=False)


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
