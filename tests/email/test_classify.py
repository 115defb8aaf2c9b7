"""Classification (severity, category, topic, attachments) and the intake checklist, from policy."""

from __future__ import annotations

import pytest

from channels.email import checklist
from channels.email.classify import (
    ClassifierRules,
    classify,
    contact_reference,
    own_text,
    severity_of,
)
from channels.email.normalise import Attachment
from config.policy import Policy
from router.domain import Category, Severity, Topic


@pytest.fixture(scope="module")
def rules(policy: Policy) -> ClassifierRules:
    return ClassifierRules.from_policy(policy)


@pytest.mark.parametrize(
    ("subject", "body", "severity", "marker"),
    [
        ("[Sev1] Everything is down", "", Severity.S1, "Sev1"),
        ("Sev 2: agent broken", "", Severity.S2, "Sev 2"),
        ("sev-1 outage", "", Severity.S1, "sev-1"),
        ("Severity 2 - login failures", "", Severity.S2, "Severity 2"),
        ("Severity: S1 - login failures", "", Severity.S1, "Severity: S1"),
        ("S3 minor question about policies", "", Severity.S3, "S3"),
        ("[S1] MFA rejected for all users", "", Severity.S1, "[S1]"),
        ("Login problem", "Impact: severity level 2 for our team", Severity.S2, "severity level 2"),
        ("Login problem", "We would rate this [S1].", Severity.S1, "[S1]"),
        # "S3" in a body is usually Amazon S3, not a severity; "Severity 10" is not one either.
        ("Backup problem", "Our S1 bucket in Amazon S3 is fine", Severity.S3, None),
        ("Severity 10 issue", "", Severity.S3, None),
        ("Agent question", "", Severity.S3, None),
        # The subject is read first.
        ("[Sev2] agent", "Severity 1", Severity.S2, "Sev2"),
    ],
)
def test_severity_markers(subject: str, body: str, severity: Severity, marker: str | None) -> None:
    assert severity_of(subject, body) == (severity, marker)


@pytest.mark.parametrize(
    ("subject", "body", "category"),
    [
        ("Agent fails to start", "", Category.BREAK_FIX),
        ("Question about our invoice", "The renewal amount looks wrong.", Category.LICENSING),
        ("Feature request: dark mode", "", Category.FEATURE_REQUEST),
        ("Help with Okta migration", "We plan to migrate 500 users.", Category.MIGRATION),
        ("SOC 2 security questionnaire", "", Category.SECURITY),
        ("Training for new admins", "Do you run a webinar?", Category.TRAINING),
        ("I want to escalate", "This is a complaint about response times.", Category.ESCALATION),
        ("Hello", "Nothing in particular", Category.BREAK_FIX),
    ],
)
def test_category_keywords_come_from_the_policy(
    rules: ClassifierRules, subject: str, body: str, category: Category
) -> None:
    assert classify(subject, body, [], rules).category is category


@pytest.mark.parametrize(
    ("subject", "body", "attachments", "topic"),
    [
        ("Agent fails on Windows 11", "", [], Topic.WINDOWS),
        ("MacBook enrolment", "Our macOS devices fail", [], Topic.MAC),
        ("SSO broken", "SAML login fails after the change", [], Topic.IDENTITY),
        ("Sync stopped", "", [Attachment("adsync.log", "text/plain", 10)], Topic.DIRECTORY),
        (
            "Import stopped",
            "",
            [Attachment("JumpCloud_AD_Integration.log", "text/plain", 10)],
            Topic.DIRECTORY,
        ),
        (
            "Agent broken",
            "",
            [Attachment("jcagent.log", "text/plain", 10, "2026 agent on windows")],
            Topic.WINDOWS,
        ),
        (
            "Agent broken",
            "",
            [Attachment("jcagent.log", "text/plain", 10, "Darwin kernel 23")],
            Topic.MAC,
        ),
        (
            "Agent broken",
            "It lives in /var/log on our ubuntu servers",
            [Attachment("jcagent.log", "text/plain", 10)],
            Topic.LINUX,
        ),
        (
            "Agent broken",
            "",
            [Attachment("C:\\Windows\\Temp\\jcagent.log", "text/plain", 10)],
            Topic.WINDOWS,
        ),
        ("Something odd", "", [], None),
    ],
)
def test_topics_from_keywords_and_attachment_names(
    rules: ClassifierRules,
    subject: str,
    body: str,
    attachments: list[Attachment],
    topic: Topic | None,
) -> None:
    assert classify(subject, body, attachments, rules).topic is topic


def test_quoted_text_and_signatures_are_ignored() -> None:
    body = (
        "New problem with macOS.\n"
        "> old quoted line about windows\n"
        "-- \nAlice, Acme (windows team)\n"
    )
    assert own_text(body) == "New problem with macOS."
    gmail = "Thanks!\n\nOn Fri, Nov 27, 2026 at 10:00 AM Support <support@router.example>\nwrote:\n> Severity: S1\n"
    assert own_text(gmail) == "Thanks!"
    outlook = "See log.\n\nFrom: Support <support@router.example>\nSent: Friday\nSubject: [Sev1]\n"
    assert own_text(outlook) == "See log."


def test_full_checklist_is_detected() -> None:
    text = (
        "Since this morning at 09:10 EST the agent on 40 laptops in the Sales group stopped "
        "reporting to the console and policies no longer apply to anyone in that department. "
        "We tried restarting the agent service and rebooting two machines. The error message "
        'is "Agent failed to connect (0x80070005)". Affected users: jane@acme.example.'
    )
    found = checklist.detect(
        text,
        [Attachment("jcagent.log", "text/plain", 10), Attachment("err.png", "image/png", 10)],
        category=Category.BREAK_FIX,
        topic=Topic.WINDOWS,
        agent_log_name="jcagent.log",
        service_log_names=["adsync.log"],
    )
    assert found.missing == ()
    assert found.to_dict() == {
        "description": True,
        "troubleshooting": True,
        "recognised_at": True,
        "errors": True,
        "resources": True,
        "agent_logs": True,
    }


def test_checklist_items_depend_on_category_and_topic() -> None:
    def keys(category: Category | None, topic: Topic | None) -> tuple[str, ...]:
        return checklist.applicable(category, topic)

    base = ("description", "troubleshooting", "recognised_at", "errors", "resources")
    assert keys(Category.BREAK_FIX, Topic.WINDOWS) == (*base, "agent_logs")
    assert keys(Category.BREAK_FIX, Topic.DIRECTORY) == (*base, "service_logs")
    assert keys(Category.BREAK_FIX, Topic.IDENTITY) == base
    assert keys(None, None) == (*base, "agent_logs")
    assert keys(Category.LICENSING, None) == ()


def test_a_terse_message_is_missing_most_items(rules: ClassifierRules) -> None:
    result = classify("AD sync broken", "Please help.", [], rules)
    assert result.topic is Topic.DIRECTORY
    assert result.checklist.missing == (
        "description",
        "troubleshooting",
        "recognised_at",
        "errors",
        "resources",
        "service_logs",
    )
    labels = checklist.missing_labels(result.checklist.to_dict())
    assert labels[-1].startswith("The service logs: AD Import")


def test_service_logs_are_found_by_attachment(rules: ClassifierRules) -> None:
    result = classify("AD sync broken", "x", [Attachment("adsync.log", "text/plain", 5)], rules)
    assert result.checklist.to_dict()["service_logs"] is True


@pytest.mark.parametrize(
    ("subject", "reference"),
    [
        ("Re: [#C-1042] Agent fails", 1042),
        ("Re: Agent fails [C-7]", 7),
        ("About (#C-12)", 12),
        ("Follow-up on #C-99", 99),
        ("Re: Agent fails", None),
        ("ABC-123 ticket", None),
    ],
)
def test_contact_references_in_subjects(subject: str, reference: int | None) -> None:
    assert contact_reference(subject) == reference


def test_an_account_line_names_the_managed_customer(rules: ClassifierRules) -> None:
    result = classify("Agent fails", "Hi,\nAccount: Contoso\nThe agent fails.", [], rules)
    assert result.account_hint == "Contoso"
