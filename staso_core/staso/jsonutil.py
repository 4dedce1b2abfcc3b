"""Canonical JSON, fingerprints and the checks every tool input passes first."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from collections.abc import Callable
from typing import Any

from .detectors.secrets_scan import KEY_INSPECT, key_kind, keyed
from .errors import InvalidToolInput

DEFAULT_MAX_INPUT_BYTES = 1024 * 1024
MAX_DEPTH = 500


def canonical_json(value: Any) -> str:
    """Key-sorted, compact JSON: equal values always give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def wire_json(value: Any) -> bytes:
    """JSON as UTF-8 bytes for the wire. Text UTF-8 cannot carry (a lone surrogate: a
    file name that was not UTF-8) is sent as its ``\\u`` escape, so it arrives as it was."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


def fingerprint(agent_name: str, tool_name: str, tool_input: Any, scope: Any = None) -> str:
    """sha256 of the canonical JSON of (agent_name, tool_name, tool_input): what makes two
    calls identical, so they share one escalation and an approval lets the identical call
    through. Numbers compare as numbers (``50000`` and ``50000.0`` are one call), ``1``
    and ``true`` stay apart, and any text hashes, unpaired surrogates included. ``scope``
    (JSON), when given, is part of the call too: who asked, where, and who must answer
    (``DecisionService._fingerprint``)."""
    parts = [agent_name, tool_name, _same_numbers(tool_input)]
    if scope is not None:
        parts.append(scope)
    text = canonical_json(parts)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def map_json(value: Any, leaf: Callable[[Any], Any],
             key: Callable[[str], str] | None = None) -> Any:
    """A copy of ``value`` with ``leaf`` applied to every value that is not an object or
    array (and ``key`` to every object key). Plain loops, not comprehensions: each
    comprehension is a frame of its own, and an input as deep as check_json allows must
    not run out of stack."""
    if isinstance(value, dict):
        out = {}
        for k, item in value.items():
            out[k if key is None else key(k)] = map_json(item, leaf, key)
        return out
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            items.append(map_json(item, leaf, key))
        return items
    return leaf(value)


def copy_json(value: Any) -> Any:
    """A copy of ``value``'s objects and arrays (a tuple becomes the list JSON makes of it);
    the values in them are shared (JSON's are immutable)."""
    return map_json(value, _itself)


def _itself(value: Any) -> Any:
    return value


def _same_numbers(value: Any) -> Any:
    """Whole floats as the ints they equal (JSON has one number type; Python two)."""
    return map_json(value, _whole)


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


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


# json.dumps with options builds a JSONEncoder per call; one kept encoder gives the same
# text (measured: 2.6 -> 1.4 µs for the benchmark's 3-field input)
_SIZE_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _c_size_encoder() -> Callable[[Any], str] | None:
    """The C encoder ``_SIZE_ENCODER.encode`` makes on each call, made once: the same
    text, without the two Python frames and the encoder object a call (1.6 -> 0.7 µs for
    the benchmark's input). Made without the circular-reference check: a value that holds
    itself ends in RecursionError instead, which ``encoded_size`` reports the same way. That
    check's dict was the encoder's only state, so one encoder serves every thread."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # (a Python without the C accelerator)
        return None
    enc = _SIZE_ENCODER
    try:
        encode = make(None, enc.default, json.encoder.encode_basestring, None,
                      enc.key_separator, enc.item_separator, enc.sort_keys, enc.skipkeys,
                      enc.allow_nan)
    except TypeError:  # (another Python's signature)
        return None
    return lambda value: "".join(encode(value, 0))


_encode_for_size = _c_size_encoder() or _SIZE_ENCODER.encode


def encoded_size(tool_input: Any, *, parsed: bool = False) -> int:
    """Check a tool input and return its size in bytes as compact JSON.

    One ``json.dumps`` does both jobs on the hot path; only a failure walks the value to
    name the offending place. ``parsed``: the input came from a JSON parser (the server's
    request body), so it holds JSON's types alone, and orjson sizes it: ~5x faster, and a
    1 MB input holds the GIL ~1 ms instead of ~3-6 (the server's other requests waited for
    it: benchmarks/stall.py). Where orjson cannot say what Python's encoder would, Python's
    decides (``_parsed_size``).
    """
    if not isinstance(tool_input, dict):
        raise InvalidToolInput(
            f"tool_input must be a dict of arguments, not {type(tool_input).__name__}")
    if parsed:
        size = _parsed_size(tool_input)
        if size is not None:
            return size
    try:
        text = _encode_for_size(tool_input)
    except (TypeError, ValueError, RecursionError):
        check_json(tool_input)
        raise InvalidToolInput("tool_input is not JSON-serialisable") from None
    # MAX_DEPTH levels need that many opening brackets (json.dumps itself allows ~1,000);
    # counting them in C spares the walk for nearly every input, large ones included
    if text.count("{") + text.count("[") > MAX_DEPTH and _deeper_than(tool_input, MAX_DEPTH):
        check_json(tool_input)  # names the place
    if text.isascii():  # one byte a character: no copy to count them (most inputs)
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))  # a lone surrogate is data too


def _parsed_size(tool_input: dict[str, Any]) -> int | None:
    """orjson's size of a parsed input, or None where Python's encoder must judge: orjson
    refuses a lone surrogate, an int over 64 bits and nesting past ~250 levels (so what it
    takes is within MAX_DEPTH), and writes NaN and infinities as ``null`` (Python's refuses
    them: an input with a ``null`` is judged again). The one difference left: a float
    between 1e-9 and 1e-4 is written a character or two longer or shorter (``0.00001``
    for ``1e-05``, ``1e-7`` for ``1e-07``), so an input made of such floats can be sized up
    to ~25% off near the limit (a clear 413 or an accepted call either way; the limit
    bounds work, which stays linear)."""
    import orjson  # (the server has it loaded; ``import staso`` does not pay for it)

    try:
        data = orjson.dumps(tool_input)
    except TypeError:  # (orjson.JSONEncodeError is one)
        return None
    return None if b"null" in data else len(data)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels; walks containers only, so a big
    input of long strings costs little."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values()
                         if isinstance(v, (dict, list, tuple)))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list, tuple)))
    return False


Location = tuple[str | int, ...]
"""Where a value sits in a tool input: dict keys (any str, "" and dots included) and list
indexes, outermost first. Redaction works on these, never on path strings."""

# the digit strings of integers in this range are judged too (card numbers sent as ints):
# fewer than 9 digits hold nothing the packs look for (an SSN has 9, a phone 10, a card 12+)
_INT_MIN, _INT_MAX = 10**8, 10**21
# strings that hold JSON are decoded at most this many layers deep ...
MAX_JSON_LAYERS = 6
# ... and at most this many times the input's string characters in total (linear time).
# Each layer's strings are no longer in total than the layer holding them, so within
# MAX_JSON_LAYERS the budget never runs out: padding cannot spend it before a payload.
JSON_DECODE_FACTOR = MAX_JSON_LAYERS
_LOOKS_LIKE_JSON = re.compile(r"\s*[\[{\"]")
_PLAIN_KEY = re.compile(r"[^.\[\]'\"\\$\s]+")
_FIELD_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")
NOT_JSON = object()


def format_location(location: Location) -> str:
    """A location as people read it in ``modifications[].field``: the dotted form
    ``customer.ssn``, ``items[0].card`` when every key is plain (printable, no ``.``, ``[``,
    ``]``, quote, backslash, ``$`` or space); otherwise the JSONPath form for the whole path,
    ``$['customer.ssn']``, ``$['']``, ``$['a b'][0]``. ``$`` is the input itself.
    ``parse_field`` reads both forms back."""
    if not location:
        return "$"
    first = location[0]
    if len(location) == 1 and isinstance(first, str) and _plain(first):  # the common case
        return first
    if all(isinstance(p, int) or _plain(p) for p in location) and isinstance(first, str):
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in location)[1:]
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else
                         "['" + p.replace("\\", "\\\\").replace("'", "\\'") + "']"
                         for p in location)


def _plain(key: str) -> bool:
    return _PLAIN_KEY.fullmatch(key) is not None and key.isprintable()


def parse_field(field: str) -> Location | None:
    """A field as a policy author writes it (``body``, ``customer.email``, ``items[0]``) or
    as ``format_location`` prints it (``$['customer.ssn']``); None if it is neither."""
    text = field[1:] if field.startswith("$") else field
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _FIELD_PART.match(text, pos)
        if m is None or (m.group(1) is not None and m.group(0)[0] != "." and pos):
            return None
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        else:
            parts.append(re.sub(r"\\(.)", r"\1", m.group(3)))
        pos = m.end()
    return tuple(parts) if parts or field == "$" else None


def locate(data: Any, field: str) -> Location | None:
    """Where the field a policy names sits in ``data``: a top-level key spelled exactly so
    (dots and all) wins, else the parsed path; None if nothing is there."""
    if isinstance(data, dict) and field in data:
        return (field,)
    location = parse_field(field)
    if location is None:
        return None
    node = data
    resolved: list[str | int] = []
    for part in location:
        if isinstance(node, list):
            index = int(part) if isinstance(part, str) and part.isdigit() else part
            if not isinstance(index, int) or index >= len(node):
                return None
            node, part = node[index], index
        elif isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        else:
            return None
        resolved.append(part)
    return tuple(resolved)


_NAME_FIELDS = ("name", "Name", "key", "Key")
_VALUE_FIELDS = frozenset(("value", "Value"))


def value_key(holder: dict[str, Any], key: str) -> str:
    """The name a value is given under: its key, or in a name/value pair (Kubernetes and ECS
    ``env``, AWS tags and parameters: ``{"name": "DB_PASSWORD", "value": "..."}``) the
    pair's name. A secret there is as plain as under ``{"DB_PASSWORD": "..."}``."""
    if key in _VALUE_FIELDS:
        for field in _NAME_FIELDS:
            name = holder.get(field)
            if isinstance(name, str):
                return name
    return key


def int_digits(value: Any) -> str | None:
    """The digit string of an integer the detectors should see (a card number sent as a
    JSON number), or None for anything else (bools, floats, short or huge numbers)."""
    if isinstance(value, int) and type(value) is not bool and _INT_MIN <= abs(value) < _INT_MAX:
        return int.__repr__(value)  # (an IntEnum's str() is its name in some Pythons)
    return None


class DecodeBudget:
    """How much embedded JSON one evaluation may still decode, in characters."""

    def __init__(self, value: Any) -> None:
        self.left = JSON_DECODE_FACTOR * string_chars(value)


def string_chars(value: Any) -> int:
    """The characters of every string value at any depth (iterative: attacker-controlled
    nesting cannot exhaust the Python stack)."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def decode_embedded_json(text: str, budget: DecodeBudget) -> Any:
    """The value a string holds as JSON (an object, array or string), or ``NOT_JSON``.

    Only text that starts with ``{``, ``[`` or ``"`` after whitespace and has a further
    ``"`` is tried (JSON without strings shows all it holds as it is), and only while
    ``budget`` lasts (each try spends the text's length), so decoding stays linear.
    """
    start = _LOOKS_LIKE_JSON.match(text)
    if start is None or len(text) > budget.left or text.find('"', start.end()) < 0:
        return NOT_JSON
    budget.left -= len(text)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return NOT_JSON


_COMMAND_WORD = re.compile(r"[A-Za-z/.~$][\w./~$+-]*")
MAX_ARGV = 1000


def command_line(items: list[Any] | tuple[Any, ...]) -> str | None:
    """A list of strings that starts with a command word (``["rm", "-rf", "/"]``, ``["DROP",
    "TABLE", "users"]``) as the one line a shell or a database would read: tools take argv
    lists too, and a command split into items must be judged whole."""
    if not 2 <= len(items) <= MAX_ARGV or not isinstance(items[0], str) or \
            not _COMMAND_WORD.fullmatch(items[0]) or not all(isinstance(i, str) for i in items):
        return None
    return shlex.join(items)


class Texts(list[str]):
    """The texts of a tool input; ``too_deep`` when a string still held JSON with text in it
    past ``MAX_JSON_LAYERS``: what is inside was not inspected, and every pack counts that
    as a finding (the engine blocks; wrapping a payload deeper never lets it through)."""

    too_deep = False


def inspected_texts(value: Any) -> Texts:
    """Every text the rule packs judge in a tool input: each string value at any depth, the
    digit string of each integer, and the same inside strings that hold JSON (decoded up to
    ``MAX_JSON_LAYERS`` deep, within a ``DecodeBudget``), so ``{"payload": "{\"query\":
    \"DROP TABLE users\"}"}`` is judged like ``{"query": "DROP TABLE users"}``.

    A value whose key names a secret or an SSN comes as a ``Keyed`` string (judged with its
    key: ``{"password": "hunter2hunter2"}``), and a key that could itself hold something a
    pack looks for (``secrets_scan.key_kind``: not a short plain name) is a text too: a key
    cannot be redacted in place, so a finding there blocks."""
    texts = Texts()
    budget: DecodeBudget | None = None
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, layer = stack.pop()
        if isinstance(item, str):
            texts.append(item)
            if layer < MAX_JSON_LAYERS and _LOOKS_LIKE_JSON.match(item):
                budget = budget or DecodeBudget(value)
                inner = decode_embedded_json(item, budget)
                if inner is not NOT_JSON:
                    stack.append((inner, layer + 1))
            elif layer >= MAX_JSON_LAYERS and not texts.too_deep and \
                    _LOOKS_LIKE_JSON.match(item) and item.count('"') >= 2:
                budget = budget or DecodeBudget(value)
                texts.too_deep = decode_embedded_json(item, budget) is not NOT_JSON
        elif isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):  # (JSON's encoder writes 1 or None as a name)
                    check_json(value)  # says where, as for any value JSON cannot carry
                    raise InvalidToolInput("tool_input has a key that is not a string")
                kind, name = key_kind(k), k
                if k in _VALUE_FIELDS and (name := value_key(item, k)) is not k:
                    kind = (kind & KEY_INSPECT) | (key_kind(name) & ~KEY_INSPECT)
                if kind:
                    if kind & KEY_INSPECT:
                        texts.append(k)  # a key cannot be redacted: a finding there blocks
                    if not isinstance(v, str) and (digits := int_digits(v)) is not None:
                        v = digits
                    if isinstance(v, str):
                        v = keyed(v, name)
                stack.append((v, layer))
        elif isinstance(item, (list, tuple)):  # (a tuple is a JSON array too)
            stack.extend((v, layer) for v in item)
            argv = command_line(item)
            if argv is not None:
                texts.append(argv)
        else:
            digits = int_digits(item)
            if digits is not None:
                texts.append(digits)
    return texts
