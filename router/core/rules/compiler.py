"""Validate rule documents and compile them into a rule set, listing every problem."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from router.core.rules.attributes import _ATTRS_PREFIX, FIELDS, OPERATORS, FieldSpec
from router.core.rules.conditions import _Group, _Leaf
from router.core.rules.errors import RuleError, RuleValidationError, _Invalid
from router.core.rules.expressions import _compile_attr, _compile_field
from router.core.rules.formatting import _did_you_mean, _fmt, _listing, _type_name
from router.core.rules.patterns import _Patterns
from router.core.rules.ruleset import Rule, RuleSet

_RULE_KEYS: Final = ("id", "description", "enabled", "default", "when", "then")
_THEN_KEYS: Final = ("queue", "priority", "priority_boost", "tags", "sla_policy")
_LEAF_KEYS: Final = ("field", "op", "value")
_GROUP_KINDS: Final = ("all", "any")
_ATTR_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")
_RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_MAX_DEPTH: Final = 8
_FIELD_LIST: Final = ", ".join([*FIELDS, "attrs.<name>"])


def compile_rules(
    documents: Sequence[Mapping[str, Any]],
    *,
    queues: Collection[str],
    sla_policies: Collection[str],
    version: int = 0,
) -> RuleSet:
    """Validate and compile rule documents; raise RuleValidationError listing every problem."""
    compiler = _Compiler(frozenset(queues), frozenset(sla_policies))
    rules = compiler.compile(documents)
    if compiler.errors:
        raise RuleValidationError(compiler.errors)
    return RuleSet(rules, version)


def validate_rules(
    documents: Sequence[Mapping[str, Any]],
    *,
    queues: Collection[str],
    sla_policies: Collection[str],
) -> list[RuleError]:
    """Return every problem in the rule documents (empty if they compile)."""
    compiler = _Compiler(frozenset(queues), frozenset(sla_policies))
    compiler.compile(documents)
    return compiler.errors


class _Compiler:
    def __init__(self, queues: frozenset[str], sla_policies: frozenset[str]) -> None:
        self.queues = queues
        self.sla_policies = sla_policies
        self.errors: list[RuleError] = []
        self.patterns = _Patterns()

    def error(self, path: str, message: str) -> None:
        self.errors.append(RuleError(path, message))

    # -- rules -------------------------------------------------------------------------------

    def compile(self, documents: object) -> list[Rule]:
        if isinstance(documents, str | bytes | Mapping) or not isinstance(documents, Sequence):
            self.error("rules", f"expected a list of rules, got {_type_name(documents)}")
            return []
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        defaults: list[int] = []
        for i, doc in enumerate(documents):
            path = f"rules[{i}]"
            if not isinstance(doc, Mapping):
                self.error(path, f"a rule must be a table/object, got {_type_name(doc)}")
                continue
            if doc.get("default") is True:
                defaults.append(i)
            rule = self.compile_rule(doc, i, path)
            rule_id = doc.get("id")
            if isinstance(rule_id, str):
                if rule_id in seen:
                    self.error(
                        f"{path}.id",
                        f"duplicate rule id {rule_id!r} (already used by rules[{seen[rule_id]}])",
                    )
                else:
                    seen[rule_id] = i
            if rule is not None:
                rules.append(rule)
        self.check_default(defaults, len(documents))
        return rules

    def check_default(self, defaults: list[int], count: int) -> None:
        if not defaults:
            self.error(
                "rules",
                'missing default rule: the last rule must have "default": true and no "when"',
            )
            return
        first = defaults[0]
        for extra in defaults[1:]:
            self.error(
                f"rules[{extra}].default",
                f"extra default rule: only one is allowed (rules[{first}] is already the default)",
            )
        if len(defaults) == 1 and first != count - 1:
            self.error(
                f"rules[{first}].default",
                f"the default rule must be the last rule (it is rule {first + 1} of {count})",
            )

    def compile_rule(self, doc: Mapping[str, Any], position: int, path: str) -> Rule | None:
        before = len(self.errors)
        self.unknown_keys(doc, _RULE_KEYS, path)

        rule_id = doc.get("id")
        if rule_id is None:
            self.error(f"{path}.id", "missing 'id'")
        elif not isinstance(rule_id, str):
            self.error(f"{path}.id", f"expected a string, got {_type_name(rule_id)}")
        elif not _RULE_ID.fullmatch(rule_id):
            self.error(
                f"{path}.id",
                f"invalid rule id {rule_id!r}: use 1-64 letters, digits, '.', '_', ':' or '-', "
                "starting with a letter or digit",
            )
        description = doc.get("description", "")
        if not isinstance(description, str):
            self.error(f"{path}.description", f"expected a string, got {_type_name(description)}")
        enabled = self.boolean(doc, "enabled", True, path)
        is_default = self.boolean(doc, "default", False, path)

        when: _Group | None = None
        if is_default:
            if "when" in doc:
                self.error(f"{path}.when", "the default rule always matches; remove 'when'")
            if not enabled:
                self.error(f"{path}.enabled", "the default rule cannot be disabled")
        elif "when" not in doc:
            self.error(f"{path}.when", "missing 'when' (only the default rule may omit it)")
        else:
            when = self.compile_when(doc["when"], f"{path}.when")

        then = self.compile_then(doc.get("then"), f"{path}.then", "then" in doc)
        if len(self.errors) > before or then is None:
            return None
        assert isinstance(rule_id, str) and isinstance(description, str)
        queue, priority, boost, tags, sla_policy = then
        return Rule(
            id=rule_id,
            description=description,
            enabled=enabled,
            default=is_default,
            queue=queue,
            priority=priority,
            priority_boost=boost,
            tags=tags,
            sla_policy=sla_policy,
            position=position,
            when=when,
        )

    def boolean(self, doc: Mapping[str, Any], key: str, default: bool, path: str) -> bool:
        value = doc.get(key, default)
        if isinstance(value, bool):
            return value
        self.error(f"{path}.{key}", f"expected true or false, got {_type_name(value)}")
        return default

    def unknown_keys(self, doc: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
        for key in doc:
            if key not in allowed:
                self.error(
                    f"{path}.{key}",
                    f"unknown key {key!r}{_did_you_mean(key, allowed)}; "
                    f"expected one of: {', '.join(allowed)}",
                )

    def compile_then(
        self, then: object, path: str, present: bool
    ) -> tuple[str, int | None, int | None, tuple[str, ...], str | None] | None:
        if not present:
            self.error(path, "missing 'then' (the action: queue, priority, tags, sla_policy)")
            return None
        if not isinstance(then, Mapping):
            self.error(path, f"expected a table/object, got {_type_name(then)}")
            return None
        before = len(self.errors)
        self.unknown_keys(then, _THEN_KEYS, path)

        queue = then.get("queue")
        if queue is None:
            self.error(f"{path}.queue", "missing 'queue'")
        elif not isinstance(queue, str):
            self.error(f"{path}.queue", f"expected a string, got {_type_name(queue)}")
        elif queue not in self.queues:
            self.error(
                f"{path}.queue",
                f"unknown queue {queue!r}{_did_you_mean(queue, self.queues)}; "
                f"known queues: {_listing(self.queues)}",
            )

        priority = self.integer(then, "priority", 0, 100, path)
        boost = self.integer(then, "priority_boost", -100, 100, path)
        if "priority" in then and "priority_boost" in then:
            self.error(path, "set either 'priority' or 'priority_boost', not both")

        tags: list[str] = []
        raw_tags = then.get("tags", [])
        if isinstance(raw_tags, str) or not isinstance(raw_tags, Sequence):
            self.error(f"{path}.tags", f"expected a list of strings, got {_type_name(raw_tags)}")
        else:
            for i, tag in enumerate(raw_tags):
                if not isinstance(tag, str) or not tag.strip():
                    self.error(f"{path}.tags[{i}]", f"expected a non-empty string, got {_fmt(tag)}")
                else:
                    tags.append(tag)

        sla_policy = then.get("sla_policy")
        if sla_policy is not None:
            if not isinstance(sla_policy, str):
                self.error(f"{path}.sla_policy", f"expected a string, got {_type_name(sla_policy)}")
            elif sla_policy not in self.sla_policies:
                self.error(
                    f"{path}.sla_policy",
                    f"unknown SLA policy {sla_policy!r}"
                    f"{_did_you_mean(sla_policy, self.sla_policies)}; "
                    f"known SLA policies: {_listing(self.sla_policies)}",
                )
        if len(self.errors) > before:
            return None
        assert isinstance(queue, str)
        return queue, priority, boost, tuple(sorted(set(tags))), sla_policy

    def integer(
        self, doc: Mapping[str, Any], key: str, low: int, high: int, path: str
    ) -> int | None:
        if key not in doc:
            return None
        value = doc[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(f"{path}.{key}", f"expected an integer, got {_type_name(value)}")
            return None
        if not low <= value <= high:
            self.error(f"{path}.{key}", f"{key} {value} out of range {low}..{high}")
            return None
        return value

    # -- conditions --------------------------------------------------------------------------

    def compile_when(self, when: object, path: str) -> _Group | None:
        if not isinstance(when, Mapping) or not any(k in when for k in _GROUP_KINDS):
            got = (
                "a table/object with keys " + ", ".join(repr(k) for k in when)
                if isinstance(when, Mapping)
                else _type_name(when)
            )
            self.error(
                path, f'expected {{"all": [conditions]}} or {{"any": [conditions]}}, got {got}'
            )
            return None
        node = self.compile_node(when, path, "when", 0)
        assert node is None or isinstance(node, _Group)
        return node

    def compile_node(self, node: object, path: str, rel: str, depth: int) -> _Leaf | _Group | None:
        """Compile a condition; rel is the path relative to the rule, kept for traces."""
        if not isinstance(node, Mapping):
            self.error(
                path,
                "a condition must be a table/object with 'field', 'op' and 'value', "
                f"or a nested 'all'/'any' group; got {_type_name(node)}",
            )
            return None
        kinds = [k for k in _GROUP_KINDS if k in node]
        if kinds:
            return self.compile_group(node, kinds, path, rel, depth)
        return self.compile_leaf(node, path, rel)

    def compile_group(
        self,
        node: Mapping[str, Any],
        kinds: list[str],
        path: str,
        rel: str,
        depth: int,
    ) -> _Group | None:
        if len(kinds) > 1:
            self.error(path, "a group has either 'all' or 'any', not both")
            return None
        kind = kinds[0]
        for key in node:
            if key != kind:
                self.error(
                    f"{path}.{key}",
                    f"unknown key {key!r} in an {kind!r} group (a group holds only {kind!r})",
                )
        if depth >= _MAX_DEPTH:
            self.error(path, f"groups nested too deeply (at most {_MAX_DEPTH} levels)")
            return None
        items = node[kind]
        if isinstance(items, str) or not isinstance(items, Sequence):
            self.error(f"{path}.{kind}", f"expected a list of conditions, got {_type_name(items)}")
            return None
        if not items:
            self.error(f"{path}.{kind}", "expected at least one condition")
            return None
        children: list[_Leaf | _Group] = []
        ok = True
        for i, item in enumerate(items):
            child = self.compile_node(item, f"{path}.{kind}[{i}]", f"{rel}.{kind}[{i}]", depth + 1)
            if child is None:
                ok = False
            else:
                children.append(child)
        if not ok:
            return None
        return _Group(kind, children, rel)

    def compile_leaf(self, node: Mapping[str, Any], path: str, rel: str) -> _Leaf | None:
        before = len(self.errors)
        self.unknown_keys(node, _LEAF_KEYS, path)
        for key in _LEAF_KEYS:
            if key not in node:
                self.error(f"{path}.{key}", f"missing {key!r}")
        name, op = node.get("field"), node.get("op")

        spec: FieldSpec | None = None
        attr_name: str | None = None
        if isinstance(name, str) and name.startswith(_ATTRS_PREFIX):
            attr_name = name[len(_ATTRS_PREFIX) :]
            if not _ATTR_NAME.fullmatch(attr_name):
                self.error(
                    f"{path}.field",
                    f"invalid custom attribute name {attr_name!r} in {name!r}: use letters, "
                    "digits, '_', '.', ':' or '-'",
                )
                attr_name = None
        elif isinstance(name, str):
            spec = FIELDS.get(name)
            if spec is None:
                self.error(
                    f"{path}.field",
                    f"unknown field {name!r}{_did_you_mean(name, FIELDS)}; "
                    f"valid fields: {_FIELD_LIST}",
                )
        elif name is not None:
            self.error(f"{path}.field", f"expected a string, got {_type_name(name)}")

        if isinstance(op, str) and op not in OPERATORS:
            self.error(
                f"{path}.op",
                f"unknown operator {op!r}{_did_you_mean(op, OPERATORS)}; "
                f"operators: {', '.join(OPERATORS)}",
            )
            op = None
        elif op is not None and not isinstance(op, str):
            self.error(f"{path}.op", f"expected a string, got {_type_name(op)}")
            op = None
        elif spec is not None and op is not None and op not in spec.ops:
            self.error(
                f"{path}.op",
                f"operator {op!r} is not valid for field {spec.name!r} (type {spec.type.value}); "
                f"valid operators: {', '.join(spec.ops)}",
            )
            op = None

        if len(self.errors) > before or op is None or "value" not in node:
            return None
        assert isinstance(name, str)
        try:
            if attr_name is not None:
                value, expr, consts = _compile_attr(attr_name, op, node["value"], self.patterns)
            else:
                assert spec is not None
                value, expr, consts = _compile_field(spec, op, node["value"], self.patterns)
        except _Invalid as exc:
            self.error(f"{path}.value{exc.sub}", exc.message)
            return None
        return _Leaf(name, op, value, rel, expr, consts)
