"""Generate and compile the Python code that evaluates rule conditions."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from router.core.rules.attributes import _ATTRS_PREFIX, ContactAttributes
from router.core.rules.formatting import _copy_value, _fmt

# Each condition compiles to a Python expression over the contact ``a``. The source text only
# ever contains whitelisted field names (keys of FIELDS), fixed operator symbols and generated
# constant names; every value from a rule document (sets, regexes, datetimes, custom-attribute
# closures) is bound through the function's namespace, never spliced into the source. One
# function for the whole rule list then evaluates every condition inline: function calls
# dominate the cost of routing in CPython, and this leaves none per rule (two or three per
# condition with one closure per condition).

Test = Callable[[ContactAttributes], bool]
Matcher = Callable[[ContactAttributes, Callable[[int], None]], int]

_MISSING: Final = object()
_NAMES: Final = itertools.count()
_SYMBOLS: Final[Mapping[str, str]] = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
}


def _bind(consts: dict[str, Any], value: object) -> str:
    """Add value to a namespace under a fresh name and return the name."""
    name = f"_k{next(_NAMES)}"
    consts[name] = value
    return name


def _build(source: str, consts: Mapping[str, Any], name: str) -> Any:
    """Compile generated source (see above) and return the object it defines as name."""
    namespace: dict[str, Any] = {"__builtins__": {}, **consts}
    exec(compile(source, "<routing rule>", "exec"), namespace)
    return namespace[name]


class _Leaf:
    """Test one field against a value: a compiled field–operator–value condition."""

    __slots__ = (
        "_test",
        "cacheable",
        "consts",
        "expr",
        "field",
        "get",
        "leaves",
        "op",
        "path",
        "text",
        "value",
    )

    def __init__(
        self, field: str, op: str, value: Any, path: str, expr: str, consts: dict[str, Any]
    ) -> None:
        self.field = field
        self.op = op
        self.value = value  # normalised document value, for rendering and to_documents()
        self.path = path
        self.expr: str = expr
        self.consts = consts
        self.text = f"{field} {op} {_fmt(value)}"
        self.get = _getter(field)
        self.leaves: tuple[_Leaf, ...] = (self,)
        # Equal datetimes may differ in offset and so in rendering; they rarely repeat anyway.
        self.cacheable = field != "received_at"
        self._test: Test | None = None

    @property
    def test(self) -> Test:
        """Return the condition as a function of the contact (built on first use)."""
        if self._test is None:
            self._test = _build(f"def test(a):\n    return {self.expr}\n", self.consts, "test")
        return self._test

    def document(self) -> dict[str, Any]:
        return {"field": self.field, "op": self.op, "value": _copy_value(self.value)}

    def explain(self, attrs: ContactAttributes) -> tuple[str, str]:
        actual = self.get(attrs)
        was = "attribute missing" if actual is _MISSING else f"was {_fmt(actual)}"
        return f"{self.text} ({was})", self.path


class _Group:
    """Combine conditions: all must hold, or any one must."""

    __slots__ = ("_test", "cacheable", "children", "consts", "expr", "kind", "leaves", "path")

    def __init__(self, kind: str, children: list[_Leaf | _Group], path: str) -> None:
        self.kind = kind
        self.children = children
        self.path = path
        joiner = " and " if kind == "all" else " or "
        self.expr: str = "(" + joiner.join(c.expr for c in children) + ")"
        self.consts: dict[str, Any] = {}
        for child in children:
            self.consts.update(child.consts)
        self.leaves: tuple[_Leaf, ...] = tuple(leaf for c in children for leaf in c.leaves)
        self.cacheable = all(leaf.cacheable for leaf in self.leaves)
        self._test: Test | None = None

    @property
    def test(self) -> Test:
        """Return the group as a function of the contact (built on first use)."""
        if self._test is None:
            self._test = _build(f"def test(a):\n    return {self.expr}\n", self.consts, "test")
        return self._test

    def document(self) -> dict[str, Any]:
        return {self.kind: [c.document() for c in self.children]}

    def explain(self, attrs: ContactAttributes) -> tuple[str, str]:
        if self.kind == "all":
            # An all-group fails on its first false child; point straight at it.
            for child in self.children:
                if not child.test(attrs):
                    return child.explain(attrs)
            return "all of the conditions held", self.path  # not reached for a failed group
        parts = []
        for child in self.children:
            text, _ = child.explain(attrs)
            parts.append(f"({text})" if isinstance(child, _Group) else text)
        return "none of: " + "; ".join(parts), self.path


def _failable(when: _Group | None) -> tuple[_Leaf | _Group, ...]:
    """Return the conditions route() may record as failed, by index (see _compile_matcher)."""
    if when is None:
        return ()
    return tuple(when.children) if when.kind == "all" else (when,)


def _getter(field: str) -> Callable[[ContactAttributes], object]:
    """Return a function reading field (or custom attribute) from a contact, for traces."""
    if field.startswith(_ATTRS_PREFIX):
        name = field[len(_ATTRS_PREFIX) :]
        return lambda a: a.attrs.get(name, _MISSING)
    get: Callable[[ContactAttributes], object] = operator.attrgetter(field)
    return get


def _compile_matcher(conditions: Sequence[_Group]) -> Matcher:
    """Compile the enabled rules' conditions, in order, into one function match(a, record)."""
    # match() returns the index of the first rule whose conditions hold (len(conditions) means
    # the default), after calling record(i) for each rule before it with the index of its failed
    # top-level condition (always 0 for an "any" group).
    # One flat function for the whole list: no Python call per rule, which is what makes
    # 1,000 rules cheap. Rules are sequential if/elif chains, so the code stays shallow.
    lines = ["def match(a, record):"]
    consts: dict[str, Any] = {}
    for k, group in enumerate(conditions):
        consts.update(group.consts)
        if group.kind == "any":
            lines.append(f"    if {group.expr}: return {k}")
            lines.append("    record(0)")
            continue
        for i, child in enumerate(group.children):
            lines.append(f"    {'elif' if i else 'if'} not {child.expr}: record({i})")
        lines.append(f"    else: return {k}")
    lines.append(f"    return {len(conditions)}")
    matcher: Matcher = _build("\n".join(lines) + "\n", consts, "match")
    return matcher
