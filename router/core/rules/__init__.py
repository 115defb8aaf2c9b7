"""Compile ordered routing rules and route contacts with them (SPEC 3).

Pure code: rule documents (plain dicts from TOML/JSON or the staff API) are validated and compiled
once per version into one generated function over precomputed frozensets, compiled regular
expressions and closures; ``RuleSet.route`` makes one call to it. The trace of a decision is
recorded as one small int per rule tried and rendered into readable strings only when it is read,
so routing stays cheap with 1,000 rules.

Rule document format::

    {"id": "premium-s1", "description": "...", "enabled": true, "default": false,
     "when": {"all": [{"field": "tier", "op": "eq", "value": "premium"},
                      {"any": [{"field": "severity", "op": "le", "value": "S2"},
                               {"field": "tags", "op": "contains", "value": "vip"}]}]},
     "then": {"queue": "premium-engineers", "priority": 90, "tags": ["p1"],
              "sla_policy": "premium"}}

The last rule must be the one default rule: ``"default": true``, no ``"when"``.

Modules, in the order a rule document flows through them:

- ``attributes``: what rules may look at (ContactAttributes, the field catalogue).
- ``compiler``: checks the documents' structure and builds Rules (compile_rules).
- ``expressions``: checks each condition's value and writes the Python expression testing it.
- ``patterns``: ``matches`` patterns under RE2 and the rule set's pattern budgets.
- ``conditions``: the compiled condition tree and the one generated match function.
- ``ruleset``: RuleSet, which orders the rules and picks the first match.
- ``trace``: the Decision and its lazily rendered trace.
- ``errors`` and ``formatting``: problems in documents, and values rendered for people.

Import the public names from this package; the modules are its internals.
"""

from router.core.rules.attributes import (
    FIELDS,
    OPERATORS,
    ContactAttributes,
    FieldSpec,
    FieldType,
    field_catalogue,
)
from router.core.rules.compiler import compile_rules, validate_rules
from router.core.rules.errors import RuleError, RuleValidationError
from router.core.rules.patterns import (
    PATTERN_MAX_CHARS,
    PATTERN_PROGRAM_BUDGET,
    PATTERN_SET_CHARS,
    PATTERN_TEXT_CHARS,
)
from router.core.rules.ruleset import Rule, RuleSet
from router.core.rules.trace import Decision, RuleTrace

__all__ = [
    "FIELDS",
    "OPERATORS",
    "PATTERN_MAX_CHARS",
    "PATTERN_PROGRAM_BUDGET",
    "PATTERN_SET_CHARS",
    "PATTERN_TEXT_CHARS",
    "ContactAttributes",
    "Decision",
    "FieldSpec",
    "FieldType",
    "Rule",
    "RuleError",
    "RuleSet",
    "RuleTrace",
    "RuleValidationError",
    "compile_rules",
    "field_catalogue",
    "validate_rules",
]
