"""Routing rules through the API: versions, concurrency, validation, dry-run, roll back, audit."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from router.core.domain import Channel, Severity, Topic
from router.runtime import EXTENSION_KEY, Runtime
from router.store.models import AuditEntry, Contact, RuleSetVersion
from tests.conftest import make_settings
from tests.functional.api.conftest import ApiClient, current_version, make_contact

# Every test here changes the shared rule set; the contacts and queues tests route through it.
pytestmark = pytest.mark.usefixtures("rules_put_back")

VIP_RULE: dict[str, Any] = {
    "id": "vip-windows",
    "description": "VIP accounts' Windows problems go to the escalations team",
    "enabled": False,
    "when": {"all": [{"field": "tags", "op": "contains", "value": "vip"}]},
    "then": {"queue": "escalations", "priority_boost": 5, "tags": ["vip"]},
}


def rule(rule_id: str, **then: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "description": f"test rule {rule_id}",
        "when": {"all": [{"field": "subject", "op": "contains", "value": rule_id}]},
        "then": {"queue": "csm", **then},
    }


def create(api: ApiClient, document: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = api.post(
        "rules",
        role="editor",
        json={"base_version": current_version(api), "rule": document, **extra},
    )
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_list_and_read_the_rules_in_force(api: ApiClient) -> None:
    response = api.get("rules", role="viewer", query={"per_page": 5})
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["version"] >= 1 and body["per_page"] == 5 and len(body["items"]) == 5
    assert body["items"][0]["id"] == "free-tier-help-center" and body["items"][0]["position"] == 0
    assert body["total"] == body["pages"] * 5 - (5 * body["pages"] - body["total"])
    last = api.get("rules", role="viewer", query={"page": body["pages"], "per_page": 5})
    assert last.get_json()["items"][-1]["id"] == "default"
    assert last.get_json()["items"][-1]["default"] is True

    disabled = api.get("rules", role="viewer", query={"enabled": "false"}).get_json()
    assert {item["id"] for item in disabled["items"]} >= {"account-escalation-boost"}
    assert all(item["enabled"] is False for item in disabled["items"])
    by_queue = api.get("rules", role="viewer", query={"queue": "cse-mac"}).get_json()
    assert [item["id"] for item in by_queue["items"]] == ["break-fix-mac"]
    text = api.get("rules", role="viewer", query={"q": "LICENSING"}).get_json()
    assert [item["id"] for item in text["items"]] == ["licensing-account-managers"]

    one = api.get("rules/break-fix-mac", role="viewer")
    assert one.status_code == 200
    assert one.get_json()["rule"]["then"]["queue"] == "cse-mac"
    missing = api.get("rules/no-such-rule", role="viewer")
    assert missing.status_code == 404 and "no-such-rule" in missing.get_json()["message"]

    whole = api.get("rule-set", role="viewer").get_json()
    assert whole["rules"][-1]["id"] == "default"
    fields = api.get("rule-set/fields", role="viewer").get_json()
    assert "tier" in {f["field"] for f in fields["fields"]}
    assert "escalations" in fields["queues"] and "premium" in fields["sla_policies"]


def test_create_edit_enable_move_delete_each_store_a_version(api: ApiClient, rt: Runtime) -> None:
    start = current_version(api)
    created = create(api, rule("t-create"))
    assert created["version"] == start + 1
    rules = api.get("rule-set", role="viewer").get_json()["rules"]
    # New rules go just above the default rule unless a position is given.
    assert created["rule"]["position"] == len(rules) - 2
    assert rules[-2]["id"] == "t-create" and rules[-1]["id"] == "default"

    edited = api.put(
        "rules/t-create",
        role="editor",
        json={"base_version": start + 1, "rule": rule("t-create", priority=77)},
    )
    assert edited.status_code == 200, edited.get_json()
    assert edited.get_json()["rule"]["then"]["priority"] == 77

    disabled = api.patch(
        "rules/t-create", role="editor", json={"base_version": start + 2, "enabled": False}
    )
    assert disabled.status_code == 200 and disabled.get_json()["rule"]["enabled"] is False

    moved = api.post(
        "rules/t-create/move", role="editor", json={"base_version": start + 3, "position": 0}
    )
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["rule"]["position"] == 0
    up = api.post(
        "rules/t-create/move", role="editor", json={"base_version": start + 4, "offset": -1}
    )
    assert up.status_code == 422  # already first
    down = api.post(
        "rules/t-create/move", role="editor", json={"base_version": start + 4, "offset": 1}
    )
    assert down.get_json()["rule"]["position"] == 1

    deleted = api.delete("rules/t-create", role="editor", query={"base_version": start + 5})
    assert deleted.status_code == 200, deleted.get_json()
    assert "t-create" not in [r["id"] for r in deleted.get_json()["rules"]]
    assert deleted.get_json()["version"] == start + 6

    with rt.db.session() as session:
        actions = list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.entity_id == "t-create")
                .order_by(AuditEntry.id)
            )
        )
        entry = session.scalar(
            select(AuditEntry).where(
                AuditEntry.entity_id == "t-create", AuditEntry.action == "rule.update"
            )
        )
        assert entry is not None
        assert entry.actor == "editor@support.example"
        assert entry.before is not None and entry.after is not None
        assert entry.before["version"] == start + 1 and entry.after["version"] == start + 2
        assert "priority" not in entry.before["rule"]["then"]
        assert entry.after["rule"]["then"]["priority"] == 77
    assert actions == [
        "rule.create",
        "rule.update",
        "rule.disable",
        "rule.move",
        "rule.move",
        "rule.delete",
    ]


def test_a_stale_edit_gets_409_and_changes_nothing(api: ApiClient, rt: Runtime) -> None:
    base = current_version(api)
    create(api, rule("t-stale-a"))
    # A second editor still holds version `base` and tries to add their own rule.
    stale = api.post("rules", role="editor", json={"base_version": base, "rule": rule("t-stale-b")})
    assert stale.status_code == 409
    body = stale.get_json()
    assert body["current_version"] == base + 1 and body["base_version"] == base
    assert "reload" in body["message"]
    assert current_version(api) == base + 1
    for path, method, payload in [
        ("rules/t-stale-a", "PATCH", {"enabled": False}),
        ("rules/t-stale-a/move", "POST", {"position": 0}),
        ("rule-set/order", "PUT", {"order": ["x"]}),
        ("rule-set", "PUT", {"rules": []}),
        (f"rule-set/versions/{base}/rollback", "POST", {}),
    ]:
        answer = api.call(method, path, role="editor", json={"base_version": base, **payload})
        assert answer.status_code == 409, (path, answer.get_json())
    gone = api.delete("rules/t-stale-a", role="editor", query={"base_version": base})
    assert gone.status_code == 409
    # The first editor's rule is intact: nothing was lost.
    assert api.get("rules/t-stale-a", role="viewer").status_code == 200


def test_two_writers_racing_for_the_same_version(api_app: Flask, rt: Runtime) -> None:
    from router.services import rule_changes, rules
    from router.services.errors import Conflict

    base = rules.get_rules(rt.db, rt.policy).version
    results = []
    for name in ("t-race-1", "t-race-2"):
        try:
            rule_changes.create_rule(
                rt.db, rt.policy, base_version=base, rule=rule(name), position=None, actor="t"
            )
            results.append("stored")
        except Conflict as exc:
            results.append(f"conflict {exc.details['current_version']}")
    assert results == ["stored", f"conflict {base + 1}"]


def test_invalid_rules_get_422_with_paths(api: ApiClient) -> None:
    base = current_version(api)
    bad = {
        "id": "t-bad",
        "when": {"all": [{"field": "tier", "op": "gt", "value": "gold"}]},
        "then": {"queue": "nowhere", "sla_policy": "platinum"},
    }
    response = api.post("rules", role="editor", json={"base_version": base, "rule": bad})
    assert response.status_code == 422
    body = response.get_json()
    paths = {error["path"] for error in body["errors"]}
    n = len(api.get("rule-set", role="viewer").get_json()["rules"]) - 1
    assert f"rules[{n}].when.all[0].op" in paths
    assert f"rules[{n}].then.queue" in paths
    assert f"rules[{n}].then.sla_policy" in paths
    assert any("unknown queue 'nowhere'" in e["message"] for e in body["errors"])
    assert current_version(api) == base

    duplicate = api.post(
        "rules", role="editor", json={"base_version": base, "rule": rule("break-fix-mac")}
    )
    assert duplicate.status_code == 409
    default = api.delete("rules/default", role="editor", query={"base_version": base})
    assert default.status_code == 422 and "default rule" in default.get_json()["message"]
    below_default = api.post(
        "rules/break-fix-mac/move", role="editor", json={"base_version": base, "position": n}
    )
    assert below_default.status_code == 422
    schema_error = api.post("rules", role="editor", json={"rule": rule("t-x")})
    assert schema_error.status_code == 422
    assert "base_version" in schema_error.get_json()["errors"]["json"]
    bad_json = api.post(
        "rules", role="editor", headers={"Content-Type": "application/json"}, json=None
    )
    assert bad_json.status_code == 422
    not_json = api.client.post(
        "/api/v1/rules",
        data="{not json",
        headers={
            "Authorization": f"Bearer {api.tokens['editor']}",
            "Content-Type": "application/json",
        },
    )
    assert not_json.status_code == 400 and not_json.get_json()["error"] == "Bad Request"
    bad_order = api.put(
        "rule-set/order", role="editor", json={"base_version": base, "order": ["default"]}
    )
    assert bad_order.status_code == 422 and "missing rule id" in bad_order.get_json()["message"]
    assert current_version(api) == base


def test_validate_endpoint_reports_without_storing(api: ApiClient) -> None:
    base = current_version(api)
    ok = api.post("rule-set/validate", role="viewer", json={"rule": VIP_RULE})
    assert ok.status_code == 200 and ok.get_json()["valid"] is True
    broken = dict(VIP_RULE, when={"all": [{"field": "tags", "op": "matches", "value": "("}]})
    answer = api.post("rule-set/validate", role="viewer", json={"rule": broken, "position": 2})
    body = answer.get_json()
    assert body["valid"] is False and body["position"] == 2
    assert body["errors"][0]["path"] == "rules[2].when.all[0].op"
    whole = api.post("rule-set/validate", role="viewer", json={"rules": [VIP_RULE]})
    assert whole.get_json()["errors"][0]["message"].startswith("missing default rule")
    assert current_version(api) == base
    both = api.post("rule-set/validate", role="viewer", json={"rules": [], "rule": VIP_RULE})
    assert both.status_code == 422


def test_dry_run_compares_candidate_with_rules_in_force(api: ApiClient) -> None:
    base = current_version(api)
    sample = {
        "received_at": "2026-11-27T15:00:00+00:00",
        "attributes": {
            "channel": "email",
            "tier": "premium",
            "severity": "S2",
            "topic": "windows",
            "tags": ["vip"],
        },
    }
    # A disabled candidate above the Windows rule is tried as enabled.
    response = api.post(
        "rule-set/dry-run",
        role="viewer",
        json={"rule": VIP_RULE, "position": 0, "contact": sample},
    )
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["candidate_matched"] is True and body["changed"] is True
    assert body["candidate"]["decision"]["queue"] == "escalations"
    assert body["in_force"]["decision"]["queue"] == "cse-windows"
    assert body["candidate"]["decision"]["priority"] == body["in_force"]["decision"]["priority"] + 5
    # Just above the default rule it is never reached: the trace says which rule won.
    low = api.post(
        "rule-set/dry-run", role="viewer", json={"rule": VIP_RULE, "contact": sample}
    ).get_json()
    assert low["candidate_matched"] is False and low["changed"] is False
    assert low["candidate"]["decision"]["matched_rule"] == "break-fix-windows"
    as_stored = api.post(
        "rule-set/dry-run",
        role="viewer",
        json={"rule": VIP_RULE, "position": 0, "contact": sample, "assume_enabled": False},
    ).get_json()
    assert as_stored["candidate_matched"] is False
    assert any(
        t["rule_id"] == "vip-windows" and t["outcome"] == "disabled"
        for t in as_stored["candidate"]["decision"]["trace"]
    )
    for_account = api.post(
        "rule-set/dry-run",
        role="viewer",
        json={
            "rule": VIP_RULE,
            "position": 0,
            "contact": {
                "account_id": "acme",
                "channel": "email",
                "topic": "windows",
                "tags": ["vip"],
            },
        },
    ).get_json()
    assert for_account["candidate"]["decision"]["queue"] == "escalations"
    unknown = api.post(
        "rule-set/dry-run",
        role="viewer",
        json={"rule": VIP_RULE, "contact": {"account_id": "nobody", "channel": "email"}},
    )
    assert unknown.status_code == 404
    invalid = api.post(
        "rule-set/dry-run",
        role="viewer",
        json={"rule": dict(VIP_RULE, then={"queue": "nope"}), "contact": sample},
    )
    assert invalid.status_code == 422 and invalid.get_json()["errors"][0]["path"].endswith(
        "then.queue"
    )
    assert current_version(api) == base


def test_versions_and_rollback(api: ApiClient, rt: Runtime) -> None:
    base = current_version(api)
    create(api, rule("t-rollback"))
    history = api.get("rule-set/versions", role="viewer", query={"per_page": 2}).get_json()
    assert history["items"][0]["version"] == base + 1
    assert history["items"][0]["changes"]["added"] == ["t-rollback"]
    assert history["items"][0]["created_by"] == "editor@support.example"
    assert history["total"] == base + 1
    mine = api.get(
        "rule-set/versions", role="viewer", query={"created_by": "editor@support.example"}
    ).get_json()
    assert all(v["created_by"] == "editor@support.example" for v in mine["items"])
    old = api.get(f"rule-set/versions/{base}", role="viewer").get_json()
    assert "t-rollback" not in [r["id"] for r in old["rules"]]
    assert api.get("rule-set/versions/99999", role="viewer").status_code == 404

    back = api.post(
        f"rule-set/versions/{base}/rollback",
        role="editor",
        json={"base_version": base + 1, "note": "undo"},
    )
    assert back.status_code == 201, back.get_json()
    body = back.get_json()
    assert body["version"] == base + 2 and body["note"] == "undo"
    assert [r["id"] for r in body["rules"]] == [r["id"] for r in old["rules"]]
    # History is kept: the rolled-back version is still there.
    assert api.get(f"rule-set/versions/{base + 1}", role="viewer").status_code == 200
    with rt.db.session() as session:
        versions = session.scalars(select(RuleSetVersion.version)).all()
        assert {base, base + 1, base + 2} <= set(versions)
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "rules.rollback"))
        assert entry is not None and entry.after is not None
        assert entry.after["rolled_back_to"] == base


def test_reorder_and_replace(api: ApiClient) -> None:
    base = current_version(api)
    ids = [r["id"] for r in api.get("rule-set", role="viewer").get_json()["rules"]]
    order = [ids[1], ids[0], *ids[2:]]
    response = api.put("rule-set/order", role="editor", json={"base_version": base, "order": order})
    assert response.status_code == 200, response.get_json()
    assert [r["id"] for r in response.get_json()["rules"]] == order
    documents = response.get_json()["rules"]
    for document in documents:
        document.pop("position")
    documents[0]["description"] = "replaced wholesale"
    replaced = api.put(
        "rule-set", role="editor", json={"base_version": base + 1, "rules": documents}
    )
    assert replaced.status_code == 200, replaced.get_json()
    assert replaced.get_json()["rules"][0]["description"] == "replaced wholesale"
    versions = api.get("rule-set/versions", role="viewer", query={"per_page": 2}).get_json()
    assert versions["items"][0]["changes"]["changed"] == [order[0]]
    assert versions["items"][1]["changes"]["reordered"] is True


def test_a_change_takes_effect_for_the_next_contact_in_every_process(
    api: ApiClient, rt: Runtime, shared_url: str
) -> None:
    # A second web process on the same database, with its own caches (so built fresh, not cached).
    other = create_app(make_settings(shared_url))
    other_rt: Runtime = other.extensions[EXTENSION_KEY]
    try:
        before = make_contact(other_rt, severity=Severity.S2, topic=Topic.LINUX, subject="t-live")
        assert before.queue == "cse-linux"
        created = create(api, rule("t-live"), position=0)
        assert created["rule"]["position"] == 0
        after = make_contact(other_rt, severity=Severity.S2, topic=Topic.LINUX, subject="t-live")
        assert after.queue == "csm"
        with other_rt.db.session() as session:
            stored = session.get(Contact, after.contact_id)
            assert stored is not None and stored.rule_version == created["version"]
            assert stored.matched_rule == "t-live"
        # Roll back through the API: the next contact in the other process routes as before.
        api.post(
            f"rule-set/versions/{created['version'] - 1}/rollback",
            role="editor",
            json={"base_version": created["version"]},
        )
        again = make_contact(other_rt, channel=Channel.PORTAL, topic=Topic.LINUX, subject="t-live")
        assert again.queue == "cse-linux"
    finally:
        other_rt.db.dispose()


def test_concurrent_writers_one_wins_the_other_gets_409(rt: Runtime, monkeypatch: Any) -> None:
    import threading

    from router.services import rule_changes, rules
    from router.services.errors import Conflict

    base = rules.get_rules(rt.db, rt.policy).version
    barrier = threading.Barrier(2, timeout=10)
    real = rule_changes.current_state
    waited: set[str] = set()

    def both_read_then_write(session: Any, policy: Any) -> Any:
        state = real(session, policy)
        name = threading.current_thread().name
        if name.startswith("t-writer") and name not in waited:
            waited.add(name)
            barrier.wait()  # both have read version `base` before either writes
        return state

    monkeypatch.setattr(rule_changes, "current_state", both_read_then_write)
    outcomes: dict[str, str] = {}

    def write(name: str) -> None:
        try:
            rule_changes.create_rule(
                rt.db, rt.policy, base_version=base, rule=rule(name), position=None, actor=name
            )
            outcomes[name] = "stored"
        except Conflict:
            outcomes[name] = "conflict"
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            outcomes[name] = repr(exc)

    threads = [
        threading.Thread(target=write, args=(f"t-writer-{i}",), name=f"t-writer-{i}")
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    monkeypatch.undo()
    assert sorted(outcomes.values()) == ["conflict", "stored"], outcomes
    state = rules.get_rules(rt.db, rt.policy)
    assert state.version == base + 1
    winner = next(name for name, outcome in outcomes.items() if outcome == "stored")
    assert winner in [doc["id"] for doc in state.documents]
