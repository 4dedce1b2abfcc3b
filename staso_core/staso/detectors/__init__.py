"""Detectors behind the built-in rule packs and their CEL functions.

Each module has one job and a boolean entry point that takes attacker-controlled text;
none of them uses a regular expression with nested quantifiers (no catastrophic backtracking).
``evaluation()`` opens the work budget that one policy evaluation's detector calls share.
"""

from . import shell_parse, sql
from .paths import is_protected_path
from .pii import PII_DETECTORS, find_pii, has_pii, redact_pii
from .shell import is_dangerous_shell
from .sql import is_destructive_sql

__all__ = ["PII_DETECTORS", "evaluation", "find_pii", "has_pii", "is_dangerous_shell",
           "is_destructive_sql", "is_protected_path", "redact_pii"]


class evaluation:  # lower case: used like a function, ``with evaluation():``
    """The work budgets one policy evaluation's detector calls share (shell parses, SQL
    parses), whatever number of strings the tool input is split into. A plain class, not a
    generator: it wraps every guard call."""

    __slots__ = ("_tokens",)

    def __enter__(self) -> None:
        self._tokens = shell_parse.open_evaluation(), sql.open_evaluation()

    def __exit__(self, *_: object) -> None:
        shell_token, sql_token = self._tokens
        shell_parse.close_evaluation(shell_token)
        sql.close_evaluation(sql_token)
