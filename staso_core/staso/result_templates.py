"""Rule results stored compactly: a decision row keeps only what differs from its tool's
template.

Every decision records what each of its tool's rules said. Most rules pass on most calls,
and a rule that passes always says the same thing, so a 50-rule policy's allow wrote the
same ~1.3 KB of rule results into every row: 85% of the row, and ~40% of the decision
log's write time (SQLite, measured on the round-2 report machine: 42-51 -> 25-35 µs of
CPU a row with the results column ~60 bytes instead).

So the results of a tool's rules as they read when every rule passes (the engine's plan
for that tool) are a *template*, stored once in the ``rule_result_templates`` table under
a hash of its text, and a row's ``results`` column holds
``{"template": KEY, "changed": [[place, result], ...]}``: the entries that differ (a rule
that fired or noted something, a plugin's verdict appended). Reading a row puts the list
back together (``expand``), so everything that reads decisions through the store sees the
full list, as rows written before this change hold it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .models import RawJSON, RuleResult, results_json


@dataclass(frozen=True, slots=True)
class ResultTemplate:
    """A tool's rule results when every rule passes, and the key it is stored under."""

    key: str  # a hash of ``text``: the same rules give the same key in every process
    passed: tuple[RuleResult, ...]
    text: str  # the results as JSON, as the template table stores them
    unchanged: str  # a row's ``results`` when nothing differs from the template

    @classmethod
    def of(cls, passed: tuple[RuleResult, ...]) -> ResultTemplate:
        text = str(results_json(list(passed)))
        key = hashlib.sha256(text.encode()).hexdigest()[:32]
        return cls(key, passed, text, json.dumps({"template": key}, separators=(",", ":")))


class CompactResults:
    """A row's rule results in the compact form the store writes (``compact``). Any other
    reader of the row, the dead-letter file among them, gets the full list's JSON text
    from ``str`` or ``repr``, as it got the full text before."""

    __slots__ = ("compact", "results", "template")

    def __init__(self, results: Sequence[RuleResult], template: ResultTemplate,
                 compact: str) -> None:
        self.results, self.template, self.compact = results, template, compact

    def __str__(self) -> str:
        return str(results_json(list(self.results)))

    __repr__ = __str__  # (the dead-letter file writes what JSON cannot hold with repr)


def compact(results: Sequence[RuleResult], template: ResultTemplate | None
            ) -> RawJSON | CompactResults:
    """The ``results`` column of a row: compact when ``template`` is this call's (its
    entries line up with the call's first results), else the full list's JSON."""
    passed = () if template is None else template.passed
    if template is None or not passed or len(results) < len(passed):
        return results_json(list(results))  # (a tool without rules: "[]" is shorter)
    if tuple(results) == passed:  # most rows: every rule passed (compared in C, by
        # identity first; the log's thread per row, callgrind: -4k instructions)
        return CompactResults(results, template, template.unchanged)
    changed = []
    for place, result in enumerate(results):
        if place < len(passed):
            same = passed[place]
            if result is same:  # (the engine reuses the template's own objects)
                continue
            if result.rule_name != same.rule_name:  # another policy's results
                return results_json(list(results))
            if result == same:  # (evaluated in a worker process: equal, not the same)
                continue
        changed.append(f"[{place},{result.json}]")
    return CompactResults(results, template, template.unchanged if not changed else
                          f'{{"template":"{template.key}","changed":[{",".join(changed)}]}}')


def is_compact(results: Any) -> bool:
    return isinstance(results, dict) and isinstance(results.get("template"), str)


def expand(results: Any, lookup: Callable[[str], list[dict[str, Any]] | None]) -> Any:
    """A stored ``results`` value as the full list; ``lookup`` gives a template's entries.
    A template that cannot be found (the table emptied by hand) leaves the entries that
    differed from it, which is all the row itself holds."""
    if not is_compact(results):
        return results
    base = lookup(results["template"])
    out = [dict(entry) for entry in base] if base is not None else []
    for place, entry in results.get("changed") or ():
        if base is not None and isinstance(place, int) and 0 <= place < len(base):
            out[place] = entry
        else:
            out.append(entry)
    return out
