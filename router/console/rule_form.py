"""Console: read the rule editor's form into a rule document, its placement and a sample contact."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from werkzeug.datastructures import MultiDict

from router.core.domain import Category, Channel, Severity, Tier, Topic
from router.core.rules import ContactAttributes
from router.core.validation import json_body_problem, parse_instant
from router.intake import ContactRequest, Sender
from router.runtime import runtime
from router.services.errors import Invalid


def whole_number(form: MultiDict[str, str], name: str) -> int:
    """Return a form field as an int; raise Invalid."""
    try:
        return int(form.get(name, ""))
    except ValueError:
        raise Invalid(f"{name} must be a whole number") from None


def rule_from_form(form: MultiDict[str, str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Build a rule document from the editor's fields; return it and any problems reading them."""
    problems: list[dict[str, str]] = []
    doc: dict[str, Any] = {
        "id": form.get("id", "").strip(),
        "description": form.get("description", "").strip(),
        "enabled": form.get("enabled") == "on",
    }
    if form.get("default") == "1":
        doc["default"] = True
        doc["enabled"] = True
    else:
        text = form.get("when", "").strip()
        # The same check every JSON body gets (app.py): deep nesting would exhaust the parser.
        hostile = json_body_problem(text.encode("utf-8", "surrogatepass"))
        try:
            if hostile:
                raise ValueError(hostile.replace("the JSON body", "it"))
            doc["when"] = json.loads(text) if text else None
        except ValueError as exc:
            problems.append({"path": "when", "message": f"not valid JSON: {exc}"})
            doc["when"] = {}
        if doc["when"] is None:
            del doc["when"]
    then: dict[str, Any] = {"queue": form.get("queue", "").strip()}
    for name in ("priority", "priority_boost"):
        raw = form.get(name, "").strip()
        if raw:
            try:
                then[name] = int(raw)
            except ValueError:
                problems.append({"path": f"then.{name}", "message": "must be a whole number"})
    tags = [tag.strip() for tag in form.get("tags", "").split(",") if tag.strip()]
    if tags:
        then["tags"] = tags
    sla_policy = form.get("sla_policy", "").strip()
    if sla_policy:
        then["sla_policy"] = sla_policy
    doc["then"] = then
    return doc, problems


def placement(form: MultiDict[str, str]) -> tuple[str | None, int | None]:
    """Return (rule id being replaced, position) for an editor submission."""
    original = form.get("original_id", "").strip() or None
    raw = form.get("position", "").strip()
    position = None
    if raw:
        try:
            position = int(raw)
        except ValueError:
            position = None
    return original, position


def sample_from_form(form: MultiDict[str, str], at: datetime) -> ContactAttributes | ContactRequest:
    """Build the dry-run's sample contact: an account's contact, or explicit attributes."""

    def choice(name: str, allowed: list[str], default: str | None) -> str | None:
        value = form.get(f"sample_{name}", "").strip()
        if not value:
            return default
        if value not in allowed:
            raise Invalid(f"sample {name}: choose one of {', '.join(allowed)}")
        return value

    raw_at = form.get("sample_received_at", "").strip()
    try:
        received_at = parse_instant(raw_at) if raw_at else at
    except ValueError as exc:
        raise Invalid(f"sample received at: {exc}") from None
    channel = choice("channel", [m.value for m in Channel], "email")
    severity = choice("severity", [m.value for m in Severity], "S3")
    category = choice("category", [m.value for m in Category], "break-fix")
    topic = choice("topic", [m.value for m in Topic], None)
    tags = frozenset(t.strip() for t in form.get("sample_tags", "").split(",") if t.strip())
    subject = form.get("sample_subject", "").strip()[:500] or None
    account = form.get("sample_account", "").strip()
    if account:
        return ContactRequest(
            channel=Channel(channel or "email"),
            external_id="dry-run",
            received_at=received_at,
            sender=Sender(account_id=account),
            severity=Severity(severity or "S3"),
            category=Category(category or "break-fix"),
            topic=Topic(topic) if topic else None,
            subject=subject,
            tags=tags,
        )
    tier = choice("tier", [m.value for m in Tier], "premium")
    region = choice("region", sorted(runtime().policy.regions), None)
    return ContactAttributes(
        channel=Channel(channel or "email"),
        tier=Tier(tier or "premium"),
        received_at=received_at,
        in_business_hours=form.get("sample_in_business_hours") == "on",
        account_region=region,
        severity=Severity(severity or "S3"),
        category=Category(category or "break-fix"),
        topic=Topic(topic) if topic else None,
        tags=tags,
        subject=subject,
    )
