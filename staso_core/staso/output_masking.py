"""Secrets in what a tool said: its output and its error, masked before the decision log
stores them (and again when a row is shown, for rows recorded before this masking existed).

A tool's output is text: JSON, a Python repr, a log line, a truncated piece of any of these.
``mask_text`` masks the policy's ``redact_in_log`` fields in all of them:

- text that parses as a whole (JSON, or a Python literal; surrounding whitespace ignored) is
  masked field by field, and every string in it is masked again the same way (JSON inside a
  string: ``{"data": "{\\"password\\": ...}"}``);
- other text has the JSON objects and lists found in it (after a prefix: ``result: {...}``)
  masked that way, and then every ``field: value``, ``field=value``, ``"field": "value"`` or
  ``'field': 'value'`` pair whose field is a secret's name (case ignored) has its value
  replaced: a quoted value up to its closing quote (or the end, when the text was cut), an
  object or list up to its closing bracket (or the end), another value up to the next space,
  comma, semicolon, ``&`` or closing bracket (``Bearer`` and the like with the token after).

Masking errs on the side of hiding: a field named like a secret has its value replaced
wherever it appears.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from .masking import MASK, Masker

_MAX_PARSE = 200_000  # longer text is masked pair by pair only (linear time)
_MAX_DEPTH = 4  # JSON in a string in JSON ...: how deep strings are parsed again
_MAX_EMBEDDED = 20  # JSON objects looked for in one text (each try may read to its end)
_KEY = re.compile(r"""(?<![\w\-.])(\\*["']?)([A-Za-z_][\w.\-]*)\1\s*[:=]\s*""")
_QUOTE = re.compile(r"""(\\*)(["'])""")
_BARE_END = re.compile(r"""[\s,;&}\])"'<>]""")
_SCHEMES = frozenset(("bearer", "basic", "token", "digest", "negotiate", "apikey"))
_OPEN = re.compile(r"[\[{]")
_BLANKS = re.compile(r"[ \t]+")
_NOTHING = object()


def mask_execution_fields(fields: dict[str, Any], masker: Masker) -> dict[str, Any]:
    """``fields`` of an execution record with its output and error masked (a copy, when
    anything changed)."""
    masked = fields
    for name in ("execution_output", "execution_error"):
        value = fields.get(name)
        if isinstance(value, str) and value:
            new = mask_text(value, masker)
            if new != value:
                if masked is fields:
                    masked = dict(fields)
                masked[name] = new
    return masked


def mask_text(text: str, masker: Masker, depth: int = 0) -> str:
    """``text`` with the values of secret-named fields masked (see the module)."""
    if not masker.patterns or not text:
        return text
    try:
        return _mask_text(text, masker, depth)
    except RecursionError:  # absurdly nested text: fields are still masked, pair by pair
        return _mask_pairs(text, masker)


def mask_strings(value: Any, masker: Masker, depth: int = 0) -> Any:
    """``value`` (decoded JSON) with secret fields masked, and its strings masked as text;
    ``value`` itself when nothing changed."""
    value = masker.mask(value)
    return _walk(value, masker, depth)


def _mask_text(text: str, masker: Masker, depth: int) -> str:
    stripped = text.strip()
    if len(stripped) <= _MAX_PARSE and stripped[:1] in ("{", "[", '"', "'"):
        parsed, as_json = _parse(stripped)
        if parsed is not _NOTHING:
            masked = mask_strings(parsed, masker, depth)
            if masked is parsed:
                return text
            try:
                return json.dumps(masked, ensure_ascii=False) if as_json else repr(masked)
            except (TypeError, ValueError):
                pass
    if len(text) <= _MAX_PARSE and depth < _MAX_DEPTH:
        text = _mask_embedded(text, masker, depth)
    return _mask_pairs(text, masker)


def _parse(text: str) -> tuple[Any, bool]:
    try:
        return json.loads(text), True
    except ValueError:
        pass
    try:
        return ast.literal_eval(text), False
    except (ValueError, SyntaxError, TypeError, MemoryError):
        return _NOTHING, False


def _walk(value: Any, masker: Masker, depth: int) -> Any:
    if isinstance(value, str):
        if depth >= _MAX_DEPTH or not value:
            return value
        return mask_text(value, masker, depth + 1)
    if isinstance(value, dict):
        out, changed = {}, False
        for k, v in value.items():
            new = _walk(v, masker, depth)
            changed = changed or new is not v
            out[k] = new
        return out if changed else value
    if isinstance(value, (list, tuple)):
        items, changed = [], False
        for v in value:
            new = _walk(v, masker, depth)
            changed = changed or new is not v
            items.append(new)
        if not changed:
            return value
        return tuple(items) if isinstance(value, tuple) else items
    return value


def _mask_embedded(text: str, masker: Masker, depth: int) -> str:
    """JSON objects and lists inside ``text`` (after a prefix, between words) masked."""
    decoder = json.JSONDecoder()
    parts: list[str] = []
    done = start = 0
    tries = 0
    while tries < _MAX_EMBEDDED:
        found = _OPEN.search(text, start)
        if found is None:
            break
        at = found.start()
        tries += 1
        try:
            value, end = decoder.raw_decode(text, at)
        except ValueError:
            start = at + 1
            continue
        if isinstance(value, (dict, list)) and value:
            masked = mask_strings(value, masker, depth)
            if masked is not value:
                parts += [text[done:at], json.dumps(masked, ensure_ascii=False)]
                done = end
        start = end
    if not parts:
        return text
    return "".join(parts) + text[done:]


def _mask_pairs(text: str, masker: Masker) -> str:
    """Every ``field: value`` / ``field=value`` pair (quoted or not) of a secret field, with
    its value masked."""
    if ":" not in text and "=" not in text:  # no pair at all (and no regex scan)
        return text
    parts: list[str] = []
    done = pos = 0
    while True:
        found = _KEY.search(text, pos)
        if found is None:
            break
        pos = found.end()
        if not masker.secret(found.group(2)):
            pos = found.start(2) + len(found.group(2))
            continue
        span = _value_span(text, pos)
        if span is None:  # nothing to hide (null, None, ""), or masked already
            continue
        parts += [text[done:span[0]], MASK]
        done = pos = span[1]
    if not parts:
        return text
    return "".join(parts) + text[done:]


def _value_span(text: str, at: int) -> tuple[int, int] | None:
    """What to replace of the value starting at ``at``: inside its quotes, or all of it
    (None: an empty or null value, or one masked already)."""
    if at >= len(text):
        return None
    quote = _QUOTE.match(text, at)
    if quote is not None:
        opener = quote.group(0)
        if quote.group(1):  # an escaped quote (JSON inside a string): up to the same one
            close = text.find(opener, quote.end())
        else:
            close = _closing_quote(text, quote.end(), quote.group(2))
        span = (quote.end(), len(text) if close < 0 else close)
    elif text[at] in "{[":
        span = (at, _closing_bracket(text, at))
    else:
        bare = _BARE_END.search(text, at)
        end = len(text) if bare is None else bare.start()
        if text[at:end].lower() in _SCHEMES:  # Authorization: Bearer <token>
            after = _BLANKS.match(text, end)
            if after is not None:
                bare = _BARE_END.search(text, after.end())
                end = len(text) if bare is None else bare.start()
        span = (at, end)
    if text[span[0]:span[1]] in ("", "null", "None", MASK):
        return None
    return span


def _closing_quote(text: str, at: int, quote: str) -> int:
    i = at
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            return i
        i += 1
    return -1


def _closing_bracket(text: str, at: int) -> int:
    """The end of the object or list opening at ``at`` (quotes respected); the text's end
    if it never closes."""
    level = 0
    i = at
    while i < len(text):
        c = text[i]
        if c in "\"'":
            close = _closing_quote(text, i + 1, c)
            if close < 0:
                return len(text)
            i = close + 1
            continue
        if c in "{[(":
            level += 1
        elif c in "}])":
            level -= 1
            if level == 0:
                return i + 1
        i += 1
    return len(text)
