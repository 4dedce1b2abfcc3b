"""Modify actions: redact, cap, set, drop. They copy; the caller's input is never mutated."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from ..detectors import redact_pii
from ..detectors.secrets_scan import closes_private_key, keyed, opens_private_key
from ..jsonutil import (
    MAX_JSON_LAYERS,
    NOT_JSON,
    DecodeBudget,
    Location,
    copy_json,
    decode_embedded_json,
    format_location,
    int_digits,
    locate,
    parse_field,
    value_key,
)
from .model import ModifySpec

MASKED_KEY = "[REDACTED:api_key]"


class ModifyError(ValueError):
    """A modification cannot be applied safely (the call is then blocked)."""


def _parent(data: dict[str, Any], field: str, create: bool) -> tuple[Any, str | int] | None:
    """The container holding ``field`` and its key there, or None. With ``create``, missing
    objects on the way are made (``set``); the last key need not exist."""
    found = locate(data, field)
    if found:
        node: Any = data
        for part in found[:-1]:
            node = node[part]
        return node, found[-1]
    location = parse_field(field)
    if not create or not location or not all(isinstance(p, str) for p in location):
        return None
    node = data
    for part in location[:-1]:
        if not isinstance(node, dict):
            return None
        node = node.setdefault(part, {})
    return (node, location[-1]) if isinstance(node, dict) else None


def redact_text(text: str, detectors: tuple[str, ...] | None, budget: DecodeBudget,
                layer: int = 0, key: str | None = None) -> tuple[str, list[str]]:
    """``text`` with every finding masked, and the detectors that hit. A string that holds
    JSON is decoded, redacted inside and encoded again, then masked as text too. ``key`` is
    the dict key the text was given under: ``{"password": "hunter2"}`` is judged with it."""
    inside: list[str] = []  # detectors that hit in the JSON the text holds
    inner = decode_embedded_json(text, budget) if layer < MAX_JSON_LAYERS else NOT_JSON
    if inner is not NOT_JSON:
        holder = [inner]
        found = redact_tree(holder, 0, detectors, budget, layer + 1)
        if found:
            text = json.dumps(holder[0], ensure_ascii=False)
            inside = [h for _, names in found for h in names]
    new, names = redact_pii(keyed(text, key) if key is not None else text, detectors)
    return str(new), sorted({*inside, *names}) if inside else names


def redact_tree(parent: Any, key: str | int, detectors: tuple[str, ...] | None,
                budget: DecodeBudget, layer: int = 0) -> list[tuple[Location, tuple[str, ...]]]:
    """Redact, in place, every string and integer under ``parent[key]`` at any depth, by
    location: any key works (dots, brackets, "", unicode). Returns (location relative to
    ``parent[key]``, detectors that hit) for each value changed, in document order. An
    integer that holds a finding becomes the redacted string (``4111111111111111`` →
    ``"[REDACTED:credit_card]"``).

    Walked with one iterator per open container (the stack is as deep as the input, not as
    long): values are judged as they come, and a location is built only for one that
    changes, from (enclosing link, key) pairs."""
    changes: list[tuple[Location, tuple[str, ...]]] = []
    opened: list[tuple[Any, str | int, Any]] = []  # private key headers without their end
    stack: list[tuple[Any, Iterator[str | int], Any]] = [(parent, iter((key,)), None)]
    while stack:
        holder, keys, link = stack[-1]
        k = next(keys, None)  # (keys are str or int, never None)
        if k is None:
            stack.pop()
            continue
        item = holder[k]
        here = (link, k) if len(stack) > 1 else None  # the root value's location is ()
        if isinstance(item, dict):
            stack.append((item, iter(item), here))
            continue
        if isinstance(item, list):
            stack.append((item, iter(range(len(item))), here))
            continue
        name = value_key(holder, k) if isinstance(holder, dict) and isinstance(k, str) \
            else None
        if isinstance(item, str):
            if ("PRIVATE KEY" in item or "PuTTY" in item) and opens_private_key(item) \
                    and (detectors is None or "api_key" in detectors):
                opened.append((holder, k, here))
            new, hits = redact_text(item, detectors, budget, layer, name)
        else:
            digits = int_digits(item)
            if digits is None:
                continue
            new, hits = redact_pii(keyed(digits, name) if name is not None else digits,
                                   detectors)
            new = str(new)
        if hits:
            holder[k] = new
            changes.append((_location(here), tuple(hits)))
    for holder, k, link in opened:
        changes.extend(_mask_key_body(holder, k, link[0] if link else None))
    return changes


def _location(link: Any) -> Location:
    parts: list[str | int] = []
    while link is not None:
        link, part = link
        parts.append(part)
    return tuple(reversed(parts))


def _mask_key_body(holder: Any, k: str | int, up: Any) -> list[tuple[Location, tuple[str, ...]]]:
    """A private key split across values: its header's value was masked; the string values
    after it in the same list or object (the key's body) are masked whole, up to and
    including the one holding the end line."""
    after = list(holder)[list(holder).index(k) + 1:] if isinstance(holder, dict) else \
        range(int(k) + 1, len(holder))
    changes: list[tuple[Location, tuple[str, ...]]] = []
    for sibling in after:
        value = holder[sibling]
        if not isinstance(value, str):
            break
        if value != MASKED_KEY:
            holder[sibling] = MASKED_KEY
            changes.append((_location((up, sibling)), ("api_key",)))
        if closes_private_key(value):
            break
    return changes


def apply_modify(data: dict[str, Any], spec: ModifySpec, rule_name: str
                 ) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Return (new input, modifications) for one rule's modify spec."""
    data = copy_json(data)  # (tuples become lists, which the redaction walk writes into)
    changes: list[dict[str, str]] = []
    if spec.redact:
        budget = DecodeBudget(data)
        if spec.redact_fields is None:
            roots: list[Location] = [()]
        else:
            roots = [loc for loc in (locate(data, f) for f in spec.redact_fields)
                     if loc is not None]
        for root in roots:
            parent: Any = [data]
            key: str | int = 0
            for part in root:
                parent, key = parent[key], part
            for where, hits in redact_tree(parent, key, spec.redact_detectors, budget):
                changes.append({"field": format_location(root + where),
                                "reason": f"redacted {', '.join(hits)} ({rule_name})"})
    for path, limit in spec.cap.items():
        found = _parent(data, path, create=False)
        if found is None:
            continue
        parent, key = found
        value = parent[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModifyError(f"cannot cap {path!r}: its value {value!r} is not a number")
        if value > limit:
            keep_int = isinstance(value, int) and float(limit).is_integer()
            parent[key] = int(limit) if keep_int else limit
            changes.append({"field": path, "reason": f"capped {value} to {limit} ({rule_name})"})
    for path, value in spec.set.items():
        found = _parent(data, path, create=True)
        if found is None or not isinstance(found[0], dict):
            raise ModifyError(f"cannot set {path!r}: a part of that path is not an object")
        parent, key = found
        if parent.get(key, object()) != value:
            parent[key] = copy.deepcopy(value)
            changes.append({"field": path, "reason": f"set to {value!r} ({rule_name})"})
    for path in spec.drop:
        found = _parent(data, path, create=False)
        if found and isinstance(found[0], dict):
            del found[0][found[1]]
            changes.append({"field": path, "reason": f"dropped ({rule_name})"})
    return data, changes
