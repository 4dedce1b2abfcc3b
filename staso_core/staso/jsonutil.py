"""Canonical JSON, fingerprints and the checks every tool input passes first."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from typing import Any

from .errors import InvalidToolInput

DEFAULT_MAX_INPUT_BYTES = 1024 * 1024
MAX_DEPTH = 500


def canonical_json(value: Any) -> str:
    """Key-sorted, compact JSON: equal values always give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def fingerprint(agent_name: str, tool_name: str, tool_input: Any) -> str:
    """sha256 of the canonical JSON of (agent_name, tool_name, tool_input) — SPEC §4."""
    return hashlib.sha256(canonical_json([agent_name, tool_name, tool_input]).encode()).hexdigest()


def check_json(value: Any, where: str = "tool_input", depth: int = 0) -> None:
    """Raise InvalidToolInput naming the first value that JSON cannot carry."""
    if depth > MAX_DEPTH:
        head = where if len(where) <= 120 else where[:100] + "…"
        raise InvalidToolInput(f"{head} is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidToolInput(f"{where} is {value!r}; JSON has no NaN or infinity")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidToolInput(
                    f"{where} has a key {key!r} of type {type(key).__name__}; keys must be str")
            if item is None or isinstance(item, (str, bool, int)):
                continue  # valid as it is: no path built for it (this runs on every call)
            check_json(item, f"{where}[{key!r}]", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if item is None or isinstance(item, (str, bool, int)):
                continue
            check_json(item, f"{where}[{i}]", depth + 1)
        return
    raise InvalidToolInput(
        f"{where} is a {type(value).__name__}, which is not JSON-serialisable; "
        "pass str, int, float, bool, None, list or dict values")


def encoded_size(tool_input: Any) -> int:
    """Check a tool input and return its size in bytes as compact JSON.

    One ``json.dumps`` does both jobs on the hot path; only a failure walks the value to
    name the offending place.
    """
    if not isinstance(tool_input, dict):
        raise InvalidToolInput(
            f"tool_input must be a dict of arguments, not {type(tool_input).__name__}")
    try:
        text = json.dumps(tool_input, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        check_json(tool_input)
        raise InvalidToolInput("tool_input is not JSON-serialisable") from None
    # MAX_DEPTH levels need that many opening brackets (json.dumps itself allows ~1,000);
    # counting them in C spares the walk for nearly every input, large ones included
    if text.count("{") + text.count("[") > MAX_DEPTH and _deeper_than(tool_input, MAX_DEPTH):
        check_json(tool_input)  # names the place
    return len(text.encode())


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels; walks containers only, so a big
    input of long strings costs little."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False


def iter_strings(value: Any) -> Iterator[tuple[str, str]]:
    """Yield (path, string) for every string value at any depth (dict keys excluded).

    Iterative, so attacker-controlled nesting cannot exhaust the Python stack.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            yield path, item
        elif isinstance(item, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v)
                         for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))
