"""Routing-rule patterns cannot freeze a worker (issue 12, item 5).

A ``matches`` rule with a catastrophic pattern such as ``^(a+)+$`` used to pass validation, and
Python's backtracking engine then took seconds (doubling per character) to route a short subject,
through the explain and dry-run endpoints a viewer may call as well as for real contacts. Rule
patterns now run on RE2 (linear time); what RE2 cannot compile is refused with a 422 that names
the condition. The bound below is generous: each request takes milliseconds now, and took about
10 to 30 seconds before on these 28-character subjects.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from router.runtime import EXTENSION_KEY
from tests.conftest import AppCache
from tests.functional.api.conftest import ApiClient, demo_app, migrated_database, role_tokens

CATASTROPHIC = [r"^(a+)+$", r"^(\w+\s?)+$"]
HOSTILE_SUBJECT = "a" * 27 + "!"  # fails to match only after the whole backtracking search
MATCHING_SUBJECT = "a" * 27
FAST = 2.0  # seconds of this thread's CPU per request; a backtracking engine needs ~10-30


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def pattern_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, apps: AppCache
) -> Iterator[Flask]:
    """Yield an app with demo data and staff of every role, on its own database."""
    for url in migrated_database(request.param, tmp_path_factory):
        application = demo_app(apps, url)
        yield application
        application.extensions[EXTENSION_KEY].db.dispose()


@pytest.fixture
def api(pattern_app: Flask) -> ApiClient:
    return ApiClient(pattern_app.test_client(), role_tokens(pattern_app))


def version(api: ApiClient) -> int:
    found: int = api.get("rule-set", role="viewer").get_json()["version"]
    return found


def subject_rule(rule_id: str, pattern: str) -> dict[str, Any]:
    return {
        "id": rule_id,
        "description": "subject pattern",
        "when": {"all": [{"field": "subject", "op": "matches", "value": pattern}]},
        "then": {"queue": "escalations", "priority": 99, "tags": ["pattern"]},
    }


def attributes(subject: str) -> dict[str, Any]:
    return {
        "received_at": "2026-11-27T15:00:00+00:00",
        "attributes": {"channel": "email", "tier": "standard", "subject": subject},
    }


def timed(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Make one request and check it took little CPU (routing ran in this thread)."""
    started = time.thread_time()
    response = call(*args, **kwargs)
    assert time.thread_time() - started < FAST, "a rule pattern backtracked"
    return response


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_stored_catastrophic_pattern_routes_at_once(api: ApiClient, pattern: str) -> None:
    base = version(api)
    rule_id = f"t-evil-{CATASTROPHIC.index(pattern)}"
    created = api.post(
        "rules",
        role="editor",
        json={"base_version": base, "rule": subject_rule(rule_id, pattern), "position": 0},
    )
    assert created.status_code == 201, created.get_json()
    try:
        missed = timed(api.post, "route/explain", role="viewer", json=attributes(HOSTILE_SUBJECT))
        assert missed.status_code == 200, missed.get_json()
        assert missed.get_json()["decision"]["matched_rule"] != rule_id
        hit = timed(api.post, "route/explain", role="viewer", json=attributes(MATCHING_SUBJECT))
        assert hit.get_json()["decision"]["matched_rule"] == rule_id
        assert hit.get_json()["decision"]["queue"] == "escalations"
        # The same through an account's sample contact (the intake path real contacts take).
        for_account = timed(
            api.post,
            "route/explain",
            role="viewer",
            json={"account_id": "acme", "channel": "email", "subject": HOSTILE_SUBJECT},
        )
        assert for_account.status_code == 200, for_account.get_json()
        assert for_account.get_json()["decision"]["matched_rule"] != rule_id
    finally:
        gone = api.delete(f"rules/{rule_id}", role="editor", query={"base_version": base + 1})
        assert gone.status_code == 200, gone.get_json()


@pytest.mark.parametrize("role", ["viewer", "editor"])
@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_dry_run_of_a_catastrophic_pattern_answers_at_once(
    api: ApiClient, pattern: str, role: str
) -> None:
    base = version(api)
    body = {"rule": subject_rule("t-dry", pattern), "position": 0}
    missed = timed(
        api.post,
        "rule-set/dry-run",
        role=role,
        json={**body, "contact": attributes(HOSTILE_SUBJECT)},
    )
    assert missed.status_code == 200, missed.get_json()
    assert missed.get_json()["candidate_matched"] is False
    hit = timed(
        api.post,
        "rule-set/dry-run",
        role=role,
        json={**body, "contact": attributes(MATCHING_SUBJECT)},
    )
    assert hit.get_json()["candidate_matched"] is True
    assert version(api) == base


@pytest.mark.parametrize(
    "pattern", [r"(?<!not )down", r"(?=.*outage).*", r"(down)\s+\1", r"(?!x)y"]
)
def test_patterns_re2_cannot_run_get_422_naming_the_condition(api: ApiClient, pattern: str) -> None:
    base = version(api)
    document = subject_rule("t-look", pattern)
    document["when"] = {
        "all": [
            {"field": "tier", "op": "eq", "value": "premium"},
            {"field": "subject", "op": "matches", "value": pattern},
        ]
    }
    path = "rules[0].when.all[1].value"

    created = api.post(
        "rules", role="editor", json={"base_version": base, "rule": document, "position": 0}
    )
    assert created.status_code == 422, created.get_json()
    errors = created.get_json()["errors"]
    assert [error["path"] for error in errors] == [path]
    assert f"bad regular expression {pattern!r}" in errors[0]["message"]
    assert "RE2 syntax" in errors[0]["message"]

    dry = api.post(
        "rule-set/dry-run",
        role="editor",
        json={"rule": document, "position": 0, "contact": attributes("down")},
    )
    assert dry.status_code == 422
    assert [error["path"] for error in dry.get_json()["errors"]] == [path]

    checked = api.post(
        "rule-set/validate", role="viewer", json={"rule": document, "position": 0}
    ).get_json()
    assert checked["valid"] is False and checked["errors"][0]["path"] == path
    assert version(api) == base


def test_a_dry_run_full_of_costly_patterns_is_refused_at_once(api: ApiClient) -> None:
    # 4,999 distinct patterns of ~14,000 RE2 instructions each: compiling them all would hold
    # the worker for half a minute; the rule set's budget stops after the first.
    rules = [subject_rule(f"t-heavy-{i}", rf"(\p{{L}}|\d|\s){{12}}q{i}") for i in range(4999)]
    rules.append({"id": "default", "default": True, "then": {"queue": "cse-general"}})
    answer = timed(
        api.post,
        "rule-set/dry-run",
        role="viewer",
        json={"rules": rules, "contact": attributes("x")},
    )
    assert answer.status_code == 422, answer.get_json()
    messages = [error["message"] for error in answer.get_json()["errors"]]
    assert any("RE2 instructions" in message for message in messages)


# Issue 12: RE2 programs of a few instructions that take ~10 ms each to parse (case-folded
# Unicode classes repeated zero times), and the same classes left unclosed so RE2 refuses
# them. 1,000 of either held a worker for about 11 s of CPU per request.
SLOW_TO_PARSE = {
    "zero-width": ("(?i)" + r"[\p{L}\p{N}\p{S}\p{P}\p{M}]{0}" * 28, ""),
    "unclosed": ("(?i)" + r"[\p{L}\p{N}\p{S}\p{P}\p{M}]" * 30, "("),
}


def rule_set(pattern: str, count: int, tail: str = "") -> list[dict[str, Any]]:
    """Return count rules with distinct patterns (each one compiles) and the default rule."""
    rules = [subject_rule(f"t-p-{i}", f"{pattern}q{i}{tail}") for i in range(count)]
    rules.append({"id": "default", "default": True, "then": {"queue": "cse-general"}})
    return rules


@pytest.mark.parametrize("kind", SLOW_TO_PARSE)
def test_patterns_slow_to_parse_are_refused_at_once(api: ApiClient, kind: str) -> None:
    prefix, tail = SLOW_TO_PARSE[kind]
    rules = rule_set(prefix, 1000, tail)
    dry = timed(
        api.post,
        "rule-set/dry-run",
        role="viewer",
        json={"rules": rules, "contact": attributes("x")},
    )
    assert dry.status_code == 422, dry.get_json()
    messages = [error["message"] for error in dry.get_json()["errors"]]
    assert any("characters" in message for message in messages)
    checked = timed(api.post, "rule-set/validate", role="viewer", json={"rules": rules})
    assert checked.status_code == 200 and checked.get_json()["valid"] is False


def test_patterns_slow_to_search_are_bounded_by_the_budget(api: ApiClient) -> None:
    # ~1,840 instructions each, built so RE2's NFA runs every instruction on every character:
    # 50 of them took 0.45 s per routed contact. A rule set holds 5 now (~40 ms a contact).
    pattern = r"(?:[ab]{0,30}a){30}c"
    subject = "a" * 500
    over = timed(
        api.post,
        "rule-set/dry-run",
        role="viewer",
        json={"rules": rule_set(pattern, 50), "contact": attributes(subject)},
    )
    assert over.status_code == 422, over.get_json()
    assert "RE2 instructions" in over.get_json()["errors"][0]["message"]
    full = timed(
        api.post,
        "rule-set/dry-run",
        role="viewer",
        json={"rules": rule_set(pattern, 5), "contact": attributes(subject)},
    )
    assert full.status_code == 200, full.get_json()
    assert full.get_json()["candidate"]["decision"]["matched_rule"] == "default"
