"""The four built-in rule packs (docs/detectors.md says what each catches and does not)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

from ..detectors import gates, has_pii, is_dangerous_shell, is_destructive_sql, is_protected_path
from ..detectors.paths import protected_path_in_any
from ..detectors.pii import PII_DETECTORS, has_pii_in_any
from ..detectors.shell import runs_destructive_sql
from ..hookspecs import hookimpl
from ..policy.model import ModifySpec, RulePack


def _destructive_sql_anywhere(text: str) -> bool:
    """SQL text, or a command line that hands a database client SQL (``psql -c ...``)."""
    return is_destructive_sql(text) or runs_destructive_sql(text)


class _Detector:
    """A pack's detector with what the engine can use besides calling it: ``may_fire``,
    a pattern every text it fires on matches (``detectors/gates.py``), and ``many``, which
    judges all the texts of a call at once (a megabyte split over thousands of values is
    searched in a few joined passes instead of one call per value)."""

    def __init__(self, one: Callable[[str], bool], may_fire: gates.Gate,
                 many: Callable[[Sequence[str]], bool] | None = None) -> None:
        self._one = one
        self.may_fire = may_fire
        if many is not None:
            self.many = many

    def __call__(self, text: str) -> bool:
        return self._one(text)


class _PiiDetector:
    """``has_pii`` with the pack's detectors; ``many`` judges all the texts of a call in a
    few joined passes (the engine uses it when a detector has one)."""

    may_fire = gates.PII  # (a wider pattern for any choice of ``detectors``)

    def __init__(self, detectors: tuple[str, ...] | None) -> None:
        # a pack's options are checked when the policy loads (ValueError, reported at the
        # 'detectors' line), never found wrong by the first call that holds personal data
        for name in detectors or ():
            if name not in PII_DETECTORS:
                near = difflib.get_close_matches(str(name), list(PII_DETECTORS), n=1)
                raise ValueError(f"unknown detector {name!r} for builtin/pii"
                                 + (f"; did you mean {near[0]!r}?" if near else "")
                                 + f" (use {', '.join(PII_DETECTORS)})")
        self.detectors = detectors

    def __call__(self, text: str) -> bool:
        return has_pii(text, self.detectors)

    def many(self, texts: Sequence[str]) -> bool:
        return has_pii_in_any(texts, self.detectors)


@hookimpl
def staso_rule_packs() -> list[RulePack]:
    return [
        RulePack("builtin/dangerous_shell", "Dangerous shell commands",
                 _Detector(is_dangerous_shell, gates.SHELL),
                 action="block", severity="critical",
                 reason="Dangerous shell command (filesystem wipe, disk write, fork bomb, "
                        "download piped to a shell, or opened-up permissions)"),
        RulePack("builtin/destructive_sql", "Destructive SQL",
                 _Detector(_destructive_sql_anywhere, gates.SQL),
                 action="block", severity="critical",
                 reason="Destructive SQL (DROP, TRUNCATE, or DELETE/UPDATE without WHERE)"),
        RulePack("builtin/pii", "Personal data and secrets", _PiiDetector(None),
                 action="modify", severity="medium",
                 reason="Personal data or secrets redacted",
                 modify=ModifySpec(redact=True), detector_factory=_PiiDetector),
        RulePack("builtin/protected_paths", "Protected paths",
                 _Detector(is_protected_path, gates.PATHS, protected_path_in_any),
                 action="block", severity="high",
                 reason="Access to a protected path (system config, keys or secrets)"),
    ]
