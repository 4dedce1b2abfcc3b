"""Detectors behind the built-in rule packs and their CEL functions.

Each module has one job and a boolean entry point that takes attacker-controlled text;
none of them uses a regular expression with nested quantifiers (no catastrophic backtracking).
``evaluation()`` opens the work budget that one policy evaluation's detector calls share.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from . import shell_parse, sql
from .paths import is_protected_path
from .pii import PII_DETECTORS, find_pii, has_pii, redact_pii
from .shell import is_dangerous_shell
from .sql import is_destructive_sql

__all__ = ["PII_DETECTORS", "evaluation", "find_pii", "has_pii", "is_dangerous_shell",
           "is_destructive_sql", "is_protected_path", "redact_pii"]


@contextmanager
def evaluation() -> Iterator[None]:
    """The work budgets one policy evaluation's detector calls share (shell parses, SQL
    parses), whatever number of strings the tool input is split into."""
    with shell_parse.evaluation(), sql.evaluation():
        yield
