"""Modify actions: redact, cap, set, drop. They copy; the caller's input is never mutated."""

from __future__ import annotations

import copy
from typing import Any

from ..detectors import redact_pii
from ..jsonutil import iter_strings
from .model import ModifySpec


class ModifyError(ValueError):
    """A modification cannot be applied safely (the call is then blocked)."""


def _split(path: str) -> list[str]:
    return [p for p in path.split(".") if p]


def _get_parent(data: dict[str, Any], path: str, create: bool) -> tuple[Any, str] | None:
    parts = _split(path)
    node: Any = data
    for part in parts[:-1]:
        if isinstance(node, dict):
            if part not in node:
                if not create:
                    return None
                node[part] = {}
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node, parts[-1]


def _redact_value(value: Any, detectors: tuple[str, ...] | None) -> tuple[Any, list[str]]:
    if isinstance(value, str):
        return redact_pii(value, detectors)
    hits: set[str] = set()
    if isinstance(value, dict):
        out_d = {}
        for k, v in value.items():
            out_d[k], found = _redact_value(v, detectors)
            hits.update(found)
        return out_d, sorted(hits)
    if isinstance(value, list):
        out_l = []
        for v in value:
            new, found = _redact_value(v, detectors)
            out_l.append(new)
            hits.update(found)
        return out_l, sorted(hits)
    return value, []


def apply_modify(data: dict[str, Any], spec: ModifySpec, rule_name: str
                 ) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Return (new input, modifications) for one rule's modify spec."""
    data = copy.deepcopy(data)
    changes: list[dict[str, str]] = []
    if spec.redact:
        if spec.redact_fields is None:
            targets = [path for path, _ in iter_strings(data)]
        else:
            targets = list(spec.redact_fields)
        for path in targets:
            found = _get_parent(data, path.replace("[", ".").replace("]", ""), create=False)
            if found is None:
                continue
            parent, key = found
            index: Any = int(key) if isinstance(parent, list) and key.isdigit() else key
            if isinstance(parent, dict) and key not in parent:
                continue
            new, hits = _redact_value(parent[index], spec.redact_detectors)
            if hits:
                parent[index] = new
                changes.append({"field": path,
                                "reason": f"redacted {', '.join(hits)} ({rule_name})"})
    for path, limit in spec.cap.items():
        found = _get_parent(data, path, create=False)
        if found is None or not isinstance(found[0], dict) or found[1] not in found[0]:
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
        found = _get_parent(data, path, create=True)
        if found is None or not isinstance(found[0], dict):
            raise ModifyError(f"cannot set {path!r}: a part of that path is not an object")
        parent, key = found
        if parent.get(key, object()) != value:
            parent[key] = copy.deepcopy(value)
            changes.append({"field": path, "reason": f"set to {value!r} ({rule_name})"})
    for path in spec.drop:
        found = _get_parent(data, path, create=False)
        if found and isinstance(found[0], dict) and found[1] in found[0]:
            del found[0][found[1]]
            changes.append({"field": path, "reason": f"dropped ({rule_name})"})
    return data, changes
