"""Detectors behind the built-in rule packs and their CEL functions.

Each module has one job and a boolean entry point that takes attacker-controlled text;
none of them uses a regular expression with nested quantifiers (no catastrophic backtracking).
``evaluation()`` opens the work budget that one policy evaluation's detector calls share.
"""

from .paths import is_protected_path
from .pii import PII_DETECTORS, find_pii, has_pii, redact_pii
from .shell import is_dangerous_shell
from .shell_parse import evaluation
from .sql import is_destructive_sql

__all__ = ["PII_DETECTORS", "evaluation", "find_pii", "has_pii", "is_dangerous_shell",
           "is_destructive_sql", "is_protected_path", "redact_pii"]
