"""What a rule's condition compares each field with, read from the CEL parser's syntax tree
(``celpy``'s grammar), so ``staso policy check`` can catch a literal of the wrong type
(``tool_input.amount > "10"``) before every call does. Only structure is read here; the
conditions themselves still run on staso's CEL engine."""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from typing import Any

from .cel_env import VARIABLES
from .cel_text import tokens

_OPERATORS = {"relation_lt": "<", "relation_le": "<=", "relation_gt": ">",
              "relation_ge": ">=", "relation_eq": "==", "relation_ne": "!=",
              "relation_in": "in"}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
ORDERING = frozenset({"<", "<=", ">", ">="})
_KINDS = {"INT_LIT": "number", "UINT_LIT": "number", "FLOAT_LIT": "number",
          "STRING_LIT": "string", "MLSTRING_LIT": "string", "BOOL_LIT": "bool",
          "NULL_LIT": "null", "BYTES_LIT": "bytes"}
# nodes that only wrap one child on the way down to an operand
_WRAPPERS = frozenset({"expr", "conditionalor", "conditionaland", "relation", "addition",
                       "multiplication", "unary", "member", "primary", "paren_expr"})


# CEL's comprehension macros. Each runs its body once per item of a list (or key of a map)
# the call supplies; nested, the work multiplies: 15 nested maps of three items run 3**15
# bodies, and a check or a guard call holding that condition never ends.
MACROS = ("all", "exists", "exists_one", "existsOne", "map", "filter")
MAX_MACRO_DEPTH = 2  # a rule may nest two (any item of a list against any of another)
_TOKEN = re.compile(r"//[^\n]*"  # a comment
                    r"|(?P<prefix>(?<!\w)[rRbB]{1,2})?(?P<quote>\"\"\"|'''|\"|')"  # a string
                    r"|(?P<macro>\.\s*(?:" + "|".join(MACROS) + r")\s*\()"
                    r"|(?P<open>[(\[{])|(?P<close>[)\]}])")


def macro_depth(source: str) -> int:
    """How deep a condition nests comprehension macros (``l.map(a, m.map(b, b))``: 2), read
    from its tokens, not by a parser (cheap, and no parser to load on the run-time path):
    strings and comments are skipped, each bracket is matched with its closer. Grants refuse
    any macro (> 0), rules any nested deeper than ``MAX_MACRO_DEPTH``. Linear in the text."""
    stack: list[bool] = []  # one per open bracket: whether it is a macro's
    depth = deepest = 0
    for found in tokens(source, _TOKEN):
        if found.group("macro") or found.group("open"):
            macro = found.group("macro") is not None
            stack.append(macro)
            depth += macro
            deepest = max(deepest, depth)
        elif found.group("close") and stack:
            depth -= stack.pop()
    return deepest


@dataclass(frozen=True)
class Comparison:
    """``field op literal`` as written in a condition (operands put field first)."""

    field: str  # tool_input.amount
    op: str  # >, ==, in, ...
    kind: str  # number, string, bool, null, bytes
    literal: str  # as written: "10"

    @property
    def text(self) -> str:
        return f"{self.field} {self.op} {self.literal}"

    def meant_number(self) -> str | None:
        """The number a string literal spells ("10" → 10), if it spells one."""
        if self.kind != "string":
            return None
        try:
            value = ast.literal_eval(self.literal)
            number = float(value) if isinstance(value, str) and value.strip() else None
        except (ValueError, SyntaxError):
            return None
        if number is None or number != number or number in (float("inf"), float("-inf")):
            return None
        return str(int(number)) if number.is_integer() and "." not in value else value.strip()


@functools.cache
def _parser() -> Any:
    from celpy.celparser import CELParser

    return CELParser()


def comparisons(source: str) -> list[Comparison]:
    """Every comparison of a field (``tool_input.x``, ``context.y``, ``tool_name``) with
    a literal, or with a list of literals (``in``). A condition the parser does not read
    gives none (staso's CEL engine has already accepted or refused it)."""
    try:
        tree = _parser().parse(source)
    except Exception:  # (celpy's parse errors have no common base worth naming)
        return []
    found = []
    for node in tree.iter_subtrees_topdown():
        if node.data != "relation" or len(node.children) != 2:
            continue
        head, right = node.children
        op = _OPERATORS.get(getattr(head, "data", ""))
        if op is None or not head.children:
            continue
        left = head.children[0]
        if op == "in":
            field = _field(left)
            if field is not None:
                found += [Comparison(field, op, kind, text) for kind, text in _list(right)]
            continue
        for a, b, how in ((left, right, op), (right, left, _FLIPPED[op])):
            field, literal = _field(a), _literal(b)
            if field is not None and literal is not None:
                found.append(Comparison(field, how, *literal))
    return found


def _unwrap(node: Any) -> Any:
    while getattr(node, "data", None) in _WRAPPERS and len(node.children) == 1 \
            and hasattr(node.children[0], "data"):
        node = node.children[0]
    return node


def _field(node: Any) -> str | None:
    node = _unwrap(node)
    kind = getattr(node, "data", None)
    if kind == "ident" and node.children:
        name = str(node.children[0])
        return name if name in VARIABLES else None
    if kind == "member_dot" and len(node.children) == 2:
        base = _field(node.children[0])
        return f"{base}.{node.children[1]}" if base else None
    if kind == "member_index" and len(node.children) == 2:
        base, key = _field(node.children[0]), _literal(node.children[1])
        return f"{base}[{key[1]}]" if base and key else None
    return None


def _literal(node: Any) -> tuple[str, str] | None:
    node = _unwrap(node)
    if getattr(node, "data", None) != "literal" or not node.children:
        return None
    token = node.children[0]
    kind = _KINDS.get(getattr(token, "type", ""))
    return (kind, str(token)) if kind else None


def _list(node: Any) -> list[tuple[str, str]]:
    node = _unwrap(node)
    if getattr(node, "data", None) != "list_lit" or not node.children:
        return []
    items = node.children[0].children if hasattr(node.children[0], "children") else []
    return [lit for lit in (_literal(item) for item in items) if lit is not None]


def field_value(sample: dict[str, Any], field: str) -> tuple[bool, Any]:
    """(found, value) of a dotted field such as ``tool_input.amount`` in a call's variables."""
    parts = field.split(".")
    value: Any = sample
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value
