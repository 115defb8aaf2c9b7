"""Compile the ``matches`` patterns of a rule set with RE2, within its complexity budgets."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import re2

from router.core.rules.errors import _Invalid

# ``matches`` patterns come from staff and run on text from anyone, so they use RE2, which
# matches in time linear in the text (Python's re backtracks: '^(a+)+$' on 40 characters never
# finishes). Linear is not free, and a dry-run may carry 5,000 rules, so a rule set's patterns
# share three budgets (figures measured on one core):
# - Parsing: PATTERN_SET_CHARS characters, charged before compiling so that refused patterns
#   count too. RE2 parses ~1 character a microsecond, but case-folding a Unicode class (\p, \P)
#   takes up to 0.4 ms and a counted repetition ~70 us per thousand, however small the program
#   ('(?i)[\p{L}\p{N}]{0}' compiles to nothing): each class weighs _UNICODE_CLASS_CHARS more,
#   each repetition its bound over _REPEAT_PER_CHAR more. Worst case ~0.15 s per rule set.
# - Compiling: RE2 refuses a program over _PATTERN_MEMORY (~15,000 instructions) after ~2 ms,
#   charged as _REFUSED_PROGRAM_COST instructions.
# - Searching: PATTERN_PROGRAM_BUDGET instructions. RE2's DFA searches ordinary patterns in a few
#   microseconds, but on a pattern of a few hundred instructions or more it can give up and fall
#   back to an NFA costing ~10-20 ns per instruction per character of text: 5 patterns
#   '(?:[ab]{0,30}a){30}cN' (1,836 instructions each) take ~40 ms on 500 'a's. A pattern sees at
#   most PATTERN_TEXT_CHARS characters of its text (subjects are cut there on every channel), so
#   one contact's pattern searches cost at most ~50 ms. A few ms would need a budget below one
#   '\p{L}+' (1,201 instructions).
PATTERN_TEXT_CHARS: Final = 500
PATTERN_MAX_CHARS: Final = 1_000
PATTERN_SET_CHARS: Final = 30_000
PATTERN_PROGRAM_BUDGET: Final = 10_000
_UNICODE_CLASS_CHARS: Final = 100
_REPEAT_PER_CHAR: Final = 10
_PATTERN_MEMORY: Final = 256 << 10
_REFUSED_PROGRAM_COST: Final = 2_000  # what a program RE2 refuses as too large cost to find out
# A backslash escape (so '\\p' is no class), or a counted repetition and its bounds.
_COSTLY_SYNTAX: Final = re.compile(r"\\(.)|\{(\d{1,4})(?:,(\d{0,4}))?\}", re.DOTALL)
# RE2's own words for the Perl features it lacks; those errors get a hint on what to use instead.
_UNSUPPORTED: Final = (
    "invalid perl operator",
    "invalid escape sequence",
    "bad repetition operator",
)
_RE2_HINT: Final = (
    "rule patterns use RE2 syntax: no backreferences, lookahead, lookbehind or possessive "
    "quantifiers"
)


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # refused patterns are reported to the editor, not to stderr
    options.max_mem = _PATTERN_MEMORY
    return options


_RE2_OPTIONS: Final = _re2_options()


class _Patterns:
    """Compile a rule set's patterns with RE2, once each, within the set's complexity budget."""

    def __init__(self) -> None:
        self.tests: dict[str, Callable[[str], bool]] = {}
        self.spent = 0  # RE2 program instructions compiled (or refused as too large) so far
        self.parsed = 0  # weighted pattern characters given to RE2 so far, refused ones too

    def searcher(self, pattern: str) -> Callable[[str], bool]:
        """Return a shared test for the pattern that remembers its last text and result."""
        cached = self.tests.get(pattern)
        if cached is not None:
            return cached
        test = _search_test(self.compile(pattern).search)
        self.tests[pattern] = test
        return test

    def compile(self, pattern: str) -> Any:
        """Compile one pattern; raise _Invalid if RE2 cannot run it or it costs too much."""
        if len(pattern) > PATTERN_MAX_CHARS:
            raise _Invalid(
                f"regular expression too long ({len(pattern)} characters; "
                f"at most {PATTERN_MAX_CHARS})"
            )
        if self.spent > PATTERN_PROGRAM_BUDGET:
            raise _Invalid(_over_budget(pattern))
        if self.parsed > PATTERN_SET_CHARS:
            raise _Invalid(_over_chars(pattern))
        self.parsed += _parse_cost(pattern)
        if self.parsed > PATTERN_SET_CHARS:
            raise _Invalid(_over_chars(pattern))
        try:
            compiled = re2.compile(pattern, _RE2_OPTIONS)
        except re2.error as exc:
            raw_reason = exc.args[0] if exc.args else ""
            reason = (
                raw_reason.decode("utf-8", "replace")
                if isinstance(raw_reason, bytes)
                else str(raw_reason)
            )
            message = f"bad regular expression {pattern!r}: {reason}"
            if any(reason.startswith(words) for words in _UNSUPPORTED):
                message += f" ({_RE2_HINT})"
            elif reason.startswith("pattern too large"):
                self.spent += _REFUSED_PROGRAM_COST
                message += " (make it simpler or shorter)"
            raise _Invalid(message) from None
        self.spent += compiled.programsize
        if self.spent > PATTERN_PROGRAM_BUDGET:
            raise _Invalid(_over_budget(pattern))
        return compiled


def _parse_cost(pattern: str) -> int:
    """Return what parsing the pattern counts against PATTERN_SET_CHARS."""
    cost = len(pattern)
    for found in _COSTLY_SYNTAX.finditer(pattern):
        escaped, low, high = found.groups()
        if escaped is not None:
            if escaped in "pP":
                cost += _UNICODE_CLASS_CHARS
        else:
            cost += min(int(high or low), 1_000) // _REPEAT_PER_CHAR  # RE2 refuses more
    return cost


def _over_chars(pattern: str) -> str:
    return (
        f"regular expression {pattern!r} is one too many: the rule set's patterns together "
        f"exceed {PATTERN_SET_CHARS:,} characters (a \\p or \\P class counts "
        f"{_UNICODE_CLASS_CHARS} more, a repetition {{n}} n/{_REPEAT_PER_CHAR} more; "
        "simplify or combine them)"
    )


def _over_budget(pattern: str) -> str:
    return (
        f"regular expression {pattern!r} is one too many: the rule set's patterns together "
        f"exceed {PATTERN_PROGRAM_BUDGET:,} RE2 instructions (simplify or combine them)"
    )


def _search_test(search: Callable[[str], object]) -> Callable[[str], bool]:
    """Return a test of text against a compiled search that remembers its last text and result."""
    limit = PATTERN_TEXT_CHARS
    # A regular expression costs about a microsecond per search; several rules often test the
    # same pattern against the same subject within one route() call. Texts are compared by
    # identity (cheap, and an identical object has identical contents); the (text, result) pair
    # is replaced as a whole, so concurrent callers never see a torn entry.
    last: list[tuple[str | None, bool]] = [(None, False)]

    def test(text: str) -> bool:
        seen, result = last[0]
        if seen is text:
            return result
        try:
            result = search(text[:limit]) is not None
        except UnicodeEncodeError:  # RE2 reads UTF-8; a lone surrogate cannot be encoded
            clean = text[:limit].encode("utf-8", "replace").decode("utf-8")
            result = search(clean) is not None
        last[0] = (text, result)
        return result

    return test
