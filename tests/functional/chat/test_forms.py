"""Pure helpers: plain-text cleaning, field parsing, the intake checklist, modes and wording."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from channels.chat import forms, idempotency, replies, triage
from channels.chat.replies import Mode
from config.policy import Policy
from router.core.domain import Category, ContactStatus, Severity, Topic
from router.core.entitlement import Access

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def portal_form(**changes: object) -> forms.PortalRequest:
    body: dict[str, object] = {"subject": "Agent down", "description": "It stopped."}
    body.update(changes)
    return forms.parse_portal_request(body, text_max_chars=1000)


def test_text_is_kept_as_plain_text_and_normalised() -> None:
    raw = " <b>bold</b> &amp;\r\nnext\rline\x00\x1b[31m\u202eevil\tend "
    assert (
        forms.clean_text(raw, field="t", max_chars=100, required=True)
        == "<b>bold</b> &amp;\nnext\nline[31mevil\tend"
    )
    assert forms.clean_text("e\u0301", field="t", max_chars=1, required=True) == "é"  # NFC
    assert (
        forms.clean_text(" a \n b ", field="t", max_chars=9, required=True, single_line=True)
        == "a b"
    )


def test_text_limits_and_types() -> None:
    with pytest.raises(forms.TooLong):
        forms.clean_text("x" * 11, field="t", max_chars=10, required=True)
    with pytest.raises(forms.FormError, match="is required"):
        forms.clean_text(None, field="t", max_chars=10, required=True)
    with pytest.raises(forms.FormError, match="must not be empty"):
        forms.clean_text("\x00 ", field="t", max_chars=10, required=True)
    with pytest.raises(forms.FormError, match="must be a string"):
        forms.clean_text(["x"], field="t", max_chars=10, required=False)
    assert forms.clean_text("  ", field="t", max_chars=10, required=False) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("S1", Severity.S1),
        ("s2", Severity.S2),
        (3, Severity.S3),
        ("sev 1", Severity.S1),
        ("Severity-2", Severity.S2),
        (None, None),
        ("", None),
    ],
)
def test_severity_forms(raw: object, expected: Severity | None) -> None:
    assert forms.parse_severity(raw) is expected


@pytest.mark.parametrize("raw", ["S4", "high", 0, True, 1.5, ["S1"]])
def test_bad_severities(raw: object) -> None:
    with pytest.raises(forms.FormError):
        forms.parse_severity(raw)


def test_topics_and_categories() -> None:
    assert forms.parse_topic(" Windows ", required=True) is Topic.WINDOWS
    assert forms.parse_topic(None, required=False) is None
    assert forms.parse_category("Feature-Request") is Category.FEATURE_REQUEST
    with pytest.raises(forms.FormError, match="windows, mac"):
        forms.parse_topic("plumbing", required=True)


@pytest.mark.parametrize("key", ["", "   ", None])
def test_absent_idempotency_key(key: str | None) -> None:
    assert forms.parse_idempotency_key(key) is None


@pytest.mark.parametrize("key", ["with space", "x" * 201, "naïve"])
def test_bad_idempotency_keys(key: str) -> None:
    with pytest.raises(forms.FormError):
        forms.parse_idempotency_key(key)


def test_keyed_external_ids_are_scoped_to_the_admin() -> None:
    a = idempotency.keyed_external_id("chat", "acme", "alice@acme.example", "k")
    assert a == idempotency.keyed_external_id("chat", "acme", "alice@acme.example", "k")
    assert a != idempotency.keyed_external_id("chat", "acme", "amir@acme.example", "k")
    assert a != idempotency.keyed_external_id("portal", "acme", "alice@acme.example", "k")
    assert len(a) <= 255


def test_chat_message_accepts_text_or_message() -> None:
    assert forms.parse_chat_message({"text": "hi"}, max_chars=5).text == "hi"
    assert forms.parse_chat_message({"message": "hi"}, max_chars=5).text == "hi"
    assert forms.parse_handoff(None, max_chars=5) is None
    assert forms.parse_handoff({}, max_chars=5) is None
    assert forms.parse_handoff({"message": "human"}, max_chars=5) == "human"


def test_checklist_for_an_agent_topic() -> None:
    form = portal_form(
        troubleshooting="restarted",
        recognised_at="2026-11-27",
        attachments=["/var/log/jcagent.log"],
    )
    items = triage.checklist(form, Topic.MAC, Category.BREAK_FIX)
    assert items == {
        "description": True,
        "troubleshooting": True,
        "recognised_at": True,
        "errors": False,
        "resources": False,
        "agent_logs": True,
    }
    assert triage.missing_items(items) == ["errors", "resources"]


def test_checklist_applies_logs_only_where_they_help() -> None:
    form = portal_form()
    assert "agent_logs" not in triage.checklist(form, Topic.IDENTITY, Category.BREAK_FIX)
    assert "agent_logs" in triage.checklist(form, Topic.DEVICES, Category.BREAK_FIX)
    assert "agent_logs" in triage.checklist(form, None, Category.BREAK_FIX)  # topic unknown
    assert "service_logs" in triage.checklist(form, Topic.DIRECTORY, Category.BREAK_FIX)
    assert triage.checklist(form, None, Category.LICENSING) == {}  # only break-fix has one
    ad_import = portal_form(attachments=["C:\\Windows\\Temp\\JumpCloud_AD_Integration.log"])
    assert triage.checklist(ad_import, Topic.DIRECTORY, Category.BREAK_FIX)["service_logs"]


@pytest.mark.parametrize(
    ("changes", "topic"),
    [
        ({"attachments": ["adsync.log"]}, Topic.DIRECTORY),
        ({"attachments": ["C:\\Windows\\Temp\\jcagent.log"]}, Topic.WINDOWS),
        ({"attachments": ["/var/log/jcagent.log"]}, Topic.MAC),
        ({"attachments": ["/var/log/jcagent.log"], "description": "rhel 9 hosts"}, Topic.LINUX),
        ({"attachments": ["jcagent.log"]}, None),
        ({"subject": "SAML login fails"}, Topic.IDENTITY),
        ({"subject": "samlx"}, None),
    ],
)
def test_topic_suggestions(policy: Policy, changes: dict[str, object], topic: Topic | None) -> None:
    assert triage.suggest_topic(portal_form(**changes), policy.topics, policy.agent_log) is topic


def test_fingerprint_is_order_independent() -> None:
    assert idempotency.fingerprint({"a": 1, "b": [1, 2]}) == idempotency.fingerprint(
        {"b": [1, 2], "a": 1}
    )
    assert idempotency.fingerprint({"a": 1}) != idempotency.fingerprint({"a": 2})


@pytest.mark.parametrize(
    ("status", "access", "next_open", "mode"),
    [
        (ContactStatus.WAITING, Access.LIVE, None, Mode.LIVE),
        (ContactStatus.WAITING, Access.BOT, None, Mode.BOT),
        (ContactStatus.WAITING, Access.OFFLINE, datetime(2026, 11, 29, tzinfo=UTC), Mode.OFFLINE),
        (ContactStatus.WAITING, Access.OFFLINE, datetime(2026, 11, 27, tzinfo=UTC), Mode.LIVE),
        (ContactStatus.DEFLECTED, Access.HELP_CENTER, None, Mode.HELP_CENTER),
        (ContactStatus.DEFLECTED, Access.DENIED, None, Mode.HELP_CENTER),
    ],
)
def test_chat_modes(
    status: ContactStatus, access: Access, next_open: datetime | None, mode: Mode
) -> None:
    assert replies.chat_mode(status, access, next_open, NOW) is mode


def test_wording() -> None:
    assert replies.wait_phrase(30) == "under a minute"
    assert replies.wait_phrase(61) == "about 1 minute"
    assert replies.wait_phrase(600) == "about 10 minutes"
    assert replies.wait_phrase(3 * 3600) == "about 3 hours"
    assert replies.local_time(NOW, "Asia/Jerusalem") == "Friday 27 November 2026, 17:00 IST"
    assert replies.local_time(NOW, "Not/AZone") == "Friday 27 November 2026, 15:00 UTC"
    links = replies.help_center("https://help.example.com/", subject="a&b", topic_label="Mac")
    assert links["links"] == [
        {"title": "Help Center", "url": "https://help.example.com"},
        {"title": "Articles about Mac", "url": "https://help.example.com/search?q=Mac"},
        {"title": "Search for “a&b”", "url": "https://help.example.com/search?q=a%26b"},
    ]
