"""The four built-in rule packs (docs/detectors.md says what each catches and does not)."""

from __future__ import annotations

from collections.abc import Callable

from ..detectors import has_pii, is_dangerous_shell, is_destructive_sql, is_protected_path
from ..detectors.shell import runs_destructive_sql
from ..hookspecs import hookimpl
from ..policy.model import ModifySpec, RulePack


def _destructive_sql_anywhere(text: str) -> bool:
    """SQL text, or a command line that hands a database client SQL (``psql -c ...``)."""
    return is_destructive_sql(text) or runs_destructive_sql(text)


def _pii_detector(detectors: tuple[str, ...]) -> Callable[[str], bool]:
    return lambda text: has_pii(text, detectors)


@hookimpl
def staso_rule_packs() -> list[RulePack]:
    return [
        RulePack("builtin/dangerous_shell", "Dangerous shell commands", is_dangerous_shell,
                 action="block", severity="critical",
                 reason="Dangerous shell command (filesystem wipe, disk write, fork bomb, "
                        "download piped to a shell, or opened-up permissions)"),
        RulePack("builtin/destructive_sql", "Destructive SQL", _destructive_sql_anywhere,
                 action="block", severity="critical",
                 reason="Destructive SQL (DROP, TRUNCATE, or DELETE/UPDATE without WHERE)"),
        RulePack("builtin/pii", "Personal data and secrets", has_pii,
                 action="modify", severity="medium",
                 reason="Personal data or secrets redacted",
                 modify=ModifySpec(redact=True), detector_factory=_pii_detector),
        RulePack("builtin/protected_paths", "Protected paths", is_protected_path,
                 action="block", severity="high",
                 reason="Access to a protected path (system config, keys or secrets)"),
    ]
