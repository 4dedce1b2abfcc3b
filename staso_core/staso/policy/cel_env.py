"""CEL conditions: compiled once at load, checked for unknown names, run per call."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection
from typing import Any

import cel

from ..jsonutil import copy_json, map_json
from .cel_text import conjuncts, uncommented

VARIABLES = ("tool_name", "tool_input", "context")
# Functions this CEL implementation runs (checked by calling each), plus the type names
# that parse as identifiers.
STANDARD_FUNCTIONS = frozenset({
    "size", "contains", "startsWith", "endsWith", "matches", "int", "uint", "double",
    "string", "bytes", "dyn", "type", "duration", "timestamp", "has",
    "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear",
    "getHours", "getMinutes", "getSeconds", "getMilliseconds",
})
TYPE_NAMES = frozenset({"int", "uint", "double", "string", "bytes", "bool", "list", "map",
                        "null_type", "type", "dyn"})
_MACRO_VARS = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
_OPERATOR = re.compile(r"^(?:_.*_|_\[_\]|@.*|!_|-_)$")  # operators, indexing included
# ``tool_input`` as a word, and what follows it: ``.field`` not called like a method
_TOOL_INPUT_USE = re.compile(r"(?<!\w)tool_input(?!\w)(\s*\.\s*([A-Za-z_]\w*)(?!\s*\()(?!\w))?")


class ConditionError(ValueError):
    """A condition does not compile or names something unknown."""


def compile_condition(source: str, functions: dict[str, Callable[..., Any]]) -> Any:
    try:
        program = cel.compile(source)
    except ValueError as exc:
        raise ConditionError(f"invalid CEL in 'when': {exc}") from None
    bound = set(_MACRO_VARS.findall(uncommented(source)))
    for name in program.variables():
        if name not in VARIABLES and name not in bound and name not in TYPE_NAMES:
            raise ConditionError(f"unknown variable {name!r} in 'when' "
                                 f"(conditions can use {', '.join(VARIABLES)})")
    for name in program.functions():
        if not _OPERATOR.match(name) and name not in STANDARD_FUNCTIONS and name not in functions:
            known = ", ".join(sorted(functions))
            raise ConditionError(f"unknown function {name!r} in 'when' (staso adds: {known})")
    return program


def tool_name_conjuncts(source: str, functions: Collection[str] = ()) -> list[Any]:
    """The conjuncts of a condition (``cel_text.conjuncts``) that read nothing but
    ``tool_name`` and call only CEL's own functions, compiled: each one's value is fixed by
    the tool's name, so an ``Engine`` works it out once per tool name. One that is false
    there makes the condition false for every call of that tool (CEL's ``&&`` is false
    when any side is, even beside an error), and the rule need not run for it. A name
    among ``functions`` (the plugins') is never taken for CEL's own, should one shadow it."""
    fixed = []
    for part in conjuncts(source) or ():
        try:
            program = cel.compile(part)
        except ValueError:
            continue
        if set(program.variables()) <= {"tool_name"} and cel_functions_only(program, functions):
            fixed.append(program)
    return fixed


def cel_functions_only(program: Any, functions: Collection[str]) -> bool:
    """Whether a compiled condition calls CEL's own functions only: none of ``functions``
    (the plugins', staso's detectors among them, whose work budget a call's rules share)."""
    return all(_OPERATOR.match(name) or (name in STANDARD_FUNCTIONS and name not in functions)
               for name in program.functions())


def false_for_tool(programs: list[Any], tool_name: str) -> bool:
    """Whether one of ``tool_name_conjuncts``' programs is false for this tool name."""
    if not programs:
        return False
    ctx = cel.Context()
    try:
        ctx.add_variable("tool_name", tool_name)
    except Exception:  # a name CEL cannot hold as is (a lone surrogate): decide nothing
        return False
    for program in programs:
        try:
            if program.execute(ctx) is False:
                return True
        except Exception:  # an error decides nothing here; the whole condition runs per call
            continue
    return False


def selected_fields(source: str) -> frozenset[str] | None:
    """The top-level fields of ``tool_input`` a condition reads, when it reads it only as
    ``tool_input.<field>`` (``has(tool_input.amount)`` included); None when it uses the
    whole map (``size(tool_input)``, ``tool_input["a"]``, ``tool_input.all(...)``, a
    comprehension variable of that name). Conservative: the source text is scanned as is,
    so a mention inside a string literal only adds a field or gives None, never drops a
    use. A condition given only these fields decides exactly as with the whole input: a
    field it reads is there with its whole value, one that is absent is absent in both."""
    fields = set()
    for use in _TOOL_INPUT_USE.finditer(uncommented(source)):
        if use.group(2) is None:
            return None
        fields.add(use.group(2))
    return frozenset(fields)


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down, as CEL sees values: Python's ``==``
    says ``1 == True == 1.0`` and ``{"flag": 1} == {"flag": True}``. (``==`` first, at C
    speed; then only the types are walked, in plain loops: this runs on every call.)"""
    kind = type(a)
    if kind is not type(b) or a != b:
        return False
    if kind is dict:
        for key, v in a.items():
            if not _same_type(v, b[key]):
                return False
    elif kind is list or kind is tuple:
        for v, w in zip(a, b, strict=True):
            if not _same_type(v, w):
                return False
    return True


def _unchanged(before: Any, now: Any) -> bool:
    """``same_value``, or False where the values nest too deep to compare (two frames a
    level: a context 500 levels deep, which the checks allow, ran out of stack)."""
    try:
        return same_value(before, now)
    except RecursionError:
        return False


def _same_type(v: Any, w: Any) -> bool:
    """Of one type, and so inside, for two values already known to be equal."""
    kind = type(v)
    if kind is not type(w):
        return False
    return same_value(v, w) if kind is dict or kind is list or kind is tuple else True


class ConditionRunner:
    """Runs compiled conditions with one CEL context per thread (contexts are not shared).

    Converting a value into CEL costs microseconds, so only the variables that the rules at
    hand reference are added, once per call. Conditions that call no function of staso's or
    a plugin's get a context without them: each new variable makes the binding rebuild its
    environment, wrapping every function again (-0.3 µs a call of the 50-rule benchmark).
    """

    def __init__(self, functions: dict[str, Callable[..., Any]]) -> None:
        self._functions = functions
        self._local = threading.local()

    def context(self, variables: dict[str, Any], calls: bool = True) -> Any:
        """A context holding ``variables``; ``calls``: with the functions."""
        local = self._local
        held: tuple[Any, dict[str, Any]] | None = getattr(
            local, "calling" if calls else "plain", None)
        if held is None:
            held = (cel.Context(functions=self._functions if calls else {}), {})
            setattr(local, "calling" if calls else "plain", held)
        ctx, last = held
        for name, value in variables.items():
            # tool names and contexts repeat from call to call: convert them only on change
            # (strictly: 1 == True in Python, but not in CEL)
            if name != "tool_input" and name in last and _unchanged(last[name], value):
                continue
            try:
                ctx.add_variable(name, value)
            except ValueError:  # CEL strings are UTF-8: a lone surrogate cannot go in
                ctx.add_variable(name, cel_text(value))
            # a copy of what went in: a caller that changes a dict inside its context in
            # place (the client copies only the top level) must not make the next call
            # look unchanged and be judged on the old value. Copied only on a change.
            last[name] = copy_json(value) if name != "tool_input" else None
        return ctx


def cel_text(value: Any) -> Any:
    """``value`` with each lone surrogate (a file name that was not UTF-8) as U+FFFD, the
    way CEL can hold it. A rule comparing such text to a literal sees it differ, as it
    does; staso's detectors see the original."""
    return map_json(value, _utf8_text, _utf8_text)


def _utf8_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value
