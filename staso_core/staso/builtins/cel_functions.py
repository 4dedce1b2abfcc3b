"""The detectors, callable from CEL conditions (docs/detectors.md says what each catches)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..detectors import has_pii, is_dangerous_shell, is_destructive_sql, is_protected_path
from ..hookspecs import hookimpl


def _strings(func: Callable[[str], bool]) -> Callable[[Any], bool]:
    """CEL may pass a non-string (a number, a map): those hold no text to inspect."""
    return lambda value: isinstance(value, str) and func(value)


@hookimpl
def staso_cel_functions() -> dict[str, Callable[..., Any]]:
    return {
        "is_destructive_sql": _strings(is_destructive_sql),
        "is_dangerous_shell": _strings(is_dangerous_shell),
        "has_pii": _strings(has_pii),
        "is_protected_path": _strings(is_protected_path),
    }
