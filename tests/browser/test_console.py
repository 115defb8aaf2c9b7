"""The staff console in headless Chromium: log in, edit and order rules, watch the queues."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from router.core.domain import Channel, Severity, Topic
from router.intake import ContactRequest, Sender
from router.services import rule_changes, rules
from router.store.models import Contact
from tests.browser.conftest import (
    EDITOR_EMAIL,
    EDITOR_PASSWORD,
    VIEWER_EMAIL,
    VIEWER_PASSWORD,
    LiveServer,
    log_in,
)

VIP_WHEN = '{"all": [{"field": "subject", "op": "contains", "value": "[vip]"}]}'


def simulate_email(server: LiveServer, subject: str) -> int:
    """Deliver one email contact from Acme's administrator through the intake path."""
    result = server.rt.intake.intake(
        ContactRequest(
            channel=Channel.EMAIL,
            external_id=f"<{uuid.uuid4().hex}@acme.example>",
            received_at=datetime.now(UTC),
            sender=Sender(admin_email="alice@acme.example", from_address="alice@acme.example"),
            subject=subject,
            severity=Severity.S2,
            topic=Topic.WINDOWS,
        )
    )
    return result.contact_id


def rule_ids(page: Any) -> list[str]:
    return [row.get_attribute("data-rule-id") for row in page.locator("#rules tbody tr").all()]


def test_login_logout_and_wrong_password(page: Any) -> None:
    page.goto("/console/contacts")
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/contacts"))
    page.fill("input[name=email]", EDITOR_EMAIL)
    page.fill("input[name=password]", "not-the-password")
    page.click("#login-form button[type=submit]")
    expect(page.locator(".flash.error")).to_have_text("Wrong email or password.")
    page.fill("input[name=password]", EDITOR_PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/console/contacts$"))
    expect(page.locator(".who")).to_have_text(f"{EDITOR_EMAIL} (editor)")
    page.click("text=Log out")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.goto("/console/queues")
    expect(page).to_have_url(re.compile(r"/console/login"))


def test_rule_editor_to_queue(page: Any, live_server: LiveServer, artifacts: Path) -> None:
    """Create a rule, dry-run it, enable it, move it above another; the next contact obeys."""
    log_in(page, EDITOR_EMAIL, EDITOR_PASSWORD)
    page.goto("/console/rules")
    page.click("#new-rule")
    expect(page).to_have_url(re.compile(r"/console/rules/new$"))

    # Live validation while typing: broken JSON, then no queue, then valid.
    page.fill("#rule-id", "vip-escalations")
    page.fill("input[name=description]", "Mail marked [vip] goes to the escalations team")
    page.fill("#rule-when", '{"all": [')
    expect(page.locator("#validation")).to_contain_text("not valid JSON")
    page.fill("#rule-when", VIP_WHEN)
    expect(page.locator("#validation")).to_contain_text("then.queue")
    page.select_option("#rule-queue", "escalations")
    expect(page.locator("#validation")).to_contain_text("✓ Valid")
    expect(page.locator("#rule-enabled")).not_to_be_checked()

    # Dry-run where it will be saved (just above the default rule): the Windows rule wins.
    page.select_option("select[name=sample_tier]", "premium")
    page.select_option("select[name=sample_severity]", "S2")
    page.select_option("select[name=sample_topic]", "windows")
    page.fill("input[name=sample_subject]", "[vip] laptops will not boot")
    page.click("#dry-run-button")
    result = page.locator("#dry-run-result")
    expect(result).to_contain_text("would not route the sample (break-fix-windows matches first")
    expect(result.locator("[data-queue]").first).to_have_attribute("data-queue", "cse-windows")
    expect(result.locator("tr.no_match").first).to_contain_text("free-tier-help-center")

    page.click("#save-rule")
    expect(page).to_have_url(re.compile(r"/console/rules#rule-vip-escalations$"))
    expect(page.locator(".flash.info")).to_contain_text("Saved vip-escalations")
    row = page.locator("#rule-vip-escalations")
    expect(row.locator(".state")).to_have_text("disabled")
    ids = rule_ids(page)
    assert ids[-2:] == ["vip-escalations", "default"]

    # Enable it, then move it above the Windows rule.
    row.locator("button.toggle").click()
    expect(page.locator("#rule-vip-escalations .state")).to_have_text("enabled")
    target = rule_ids(page).index("break-fix-windows")
    move = page.locator("#rule-vip-escalations form.move-to")
    move.locator("input[name=position]").fill(str(target))
    move.locator("button").click()
    expect(page.locator("#rule-vip-escalations .position")).to_have_text(str(target))
    ids = rule_ids(page)
    assert ids.index("vip-escalations") < ids.index("break-fix-windows")

    # The queues page refreshes itself; the next [vip] contact lands in escalations.
    page.goto("/console/queues?refresh=1")
    waiting = page.locator("#queue-rows tr[data-queue=escalations] td.waiting")
    expect(waiting).to_have_text("0")
    contact_id = simulate_email(live_server, "[vip] laptops will not boot")
    expect(waiting).to_have_text("1", timeout=8_000)
    expect(page.locator("#queue-rows tr[data-queue=cse-windows] td.waiting")).to_have_text("0")
    page.screenshot(path=str(artifacts / "queues.png"), full_page=True)
    assert (artifacts / "queues.png").stat().st_size > 10_000

    with live_server.rt.db.session() as session:
        stored = session.get(Contact, contact_id)
        assert stored is not None and stored.matched_rule == "vip-escalations"
    page.click("#queue-rows tr[data-queue=escalations] a")
    page.click(f"text=C-{contact_id}")
    expect(page.locator("#trace tr.matched")).to_contain_text("vip-escalations")
    expect(page.locator("#timeline")).to_contain_text("routed")


def test_stale_rule_edit_keeps_the_input(page: Any, live_server: LiveServer) -> None:
    log_in(page, EDITOR_EMAIL, EDITOR_PASSWORD)
    page.goto("/console/rules/break-fix-linux/edit")
    page.fill("input[name=description]", "Linux agents (my edit)")
    # Someone else saves a change meanwhile.
    rt = live_server.rt
    state = rules.get_rules(rt.db, rt.policy)
    rule_changes.update_rule(
        rt.db,
        rt.policy,
        "break-fix-linux",
        base_version=state.version,
        changes={"description": "their edit"},
        actor="someone@support.example",
    )
    page.click("#save-rule")
    expect(page.locator("#conflict")).to_contain_text("the rules changed")
    expect(page.locator("#conflict pre")).to_contain_text("their edit")
    expect(page.locator("input[name=description]")).to_have_value("Linux agents (my edit)")
    page.click("#save-rule")
    expect(page.locator(".flash.info")).to_contain_text("Saved break-fix-linux")
    expect(page.locator("#rule-break-fix-linux")).to_contain_text("Linux agents (my edit)")


def test_script_in_an_account_name_shows_as_text(page: Any) -> None:
    log_in(page)
    page.on("dialog", lambda dialog: (_ for _ in ()).throw(AssertionError("a dialog opened")))
    name = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
    page.goto("/console/accounts")
    form = page.locator("#new-account")
    form.locator("input[name=id]").fill("xss-test")
    form.locator("input[name=name]").fill(name)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/console/accounts/xss-test$"))
    expect(page.locator("#account-name")).to_have_text(name)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#account-name script, #account-name img").count() == 0
    page.goto("/console/accounts?q=xss")
    expect(page.locator("#accounts td.account-name")).to_have_text(name)
    assert page.evaluate("window.__pwned") is None
    page.goto("/console/audit?entity_id=xss-test")
    expect(page.locator("#audit")).to_contain_text("account.create")
    assert page.evaluate("window.__pwned") is None


def test_forms_need_the_csrf_token(page: Any, live_server: LiveServer) -> None:
    log_in(page, EDITOR_EMAIL, EDITOR_PASSWORD)
    page.goto("/console/rules")
    version = page.locator("#rules").get_attribute("data-base-version")
    # Same session cookie, no token: refused, and nothing changes.
    forged = page.request.post(
        "/console/rules/break-fix-mac/toggle",
        form={"base_version": version, "enabled": "0"},
        max_redirects=0,
    )
    assert forged.status == 400
    assert "CSRF" in forged.text()
    wrong = page.request.post(
        "/console/rules/break-fix-mac/toggle",
        form={"base_version": version, "enabled": "0", "csrf_token": "forged"},
        max_redirects=0,
    )
    assert wrong.status == 400
    state = rules.get_rules(live_server.rt.db, live_server.rt.policy)
    assert state.version == int(version or 0)
    assert state.documents[state.index("break-fix-mac")]["enabled"] is True
    # A page on another origin cannot post either: the cookie is SameSite=Lax and no token.
    page.goto("/console/rules")
    expect(page.locator("#rule-break-fix-mac .state")).to_have_text("enabled")


def test_a_viewer_sees_no_controls_and_cannot_change(page: Any) -> None:
    log_in(page, VIEWER_EMAIL, VIEWER_PASSWORD)
    page.goto("/console/rules")
    expect(page.locator("#rules")).to_be_visible()
    assert page.locator("#new-rule").count() == 0
    assert page.locator("#rules button").count() == 0
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    refused = page.request.post(
        "/console/rules/break-fix-mac/toggle",
        form={"base_version": "1", "enabled": "0", "csrf_token": token},
        max_redirects=0,
    )
    assert refused.status == 403
    page.goto("/console/rules/new")
    expect(page.locator("h1")).to_have_text("Forbidden")


def test_contact_actions_and_pins(page: Any, live_server: LiveServer) -> None:
    contact_id = simulate_email(live_server, "printer queue stuck")
    log_in(page)
    page.goto(f"/console/contacts/{contact_id}")
    page.click("text=Accept")
    expect(page.locator("#status")).to_have_text("accepted")
    page.select_option("select[name=severity]", "S1")
    page.click("button:has-text('Re-grade')")
    expect(page.locator("#severity")).to_have_text("S1")
    expect(page.locator("#timeline")).to_contain_text("regraded")
    page.click("button:has-text('Record first response')")
    expect(page.locator("#sla")).to_contain_text("met")

    page.goto("/console/accounts/acme")
    page.click("#set-pin button[type=submit]")
    pin = page.locator("#new-pin").inner_text()
    assert re.fullmatch(r"\d{8}", pin)
    page.click("text=Back to the account")
    assert pin not in page.content()


def test_calendar_override(page: Any) -> None:
    log_in(page, EDITOR_EMAIL, EDITOR_PASSWORD)
    page.goto("/console/calendars?region=gb")
    iso = (datetime.now(ZoneInfo("Europe/London")).date() + timedelta(days=5)).isoformat()
    form = page.locator("#override-form")
    form.locator("select[name=region]").select_option("gb")
    form.locator("input[name=day]").fill(iso)
    form.locator("input[name=hours]").fill("10:00-12:00")
    form.locator("input[name=note]").fill("Half day")
    form.locator("button[type=submit]").click()
    expect(page.locator("#region-gb")).to_contain_text("override: Half day")
    expect(page.locator("#region-gb ul.overrides")).to_contain_text("10:00–12:00")
    page.locator("#region-gb ul.overrides button").first.click()
    expect(page.locator(".flash.info")).to_contain_text("Removed the override")


def test_drag_a_rule_above_another(page: Any, live_server: LiveServer) -> None:
    log_in(page, EDITOR_EMAIL, EDITOR_PASSWORD)
    page.goto("/console/rules")
    before = rule_ids(page)
    assert before.index("break-fix-devices") > before.index("break-fix-mac")
    # Read the version before dragging: the page may reload with the new one before we look.
    version = page.locator("#rules").get_attribute("data-base-version")
    page.locator("#rule-break-fix-devices td.cond").drag_to(
        page.locator("#rule-break-fix-mac td.cond")
    )
    page.wait_for_function(
        "v => document.querySelector('#rules')?.dataset.baseVersion !== v", arg=version
    )
    after = rule_ids(page)
    assert after.index("break-fix-devices") == before.index("break-fix-mac")
    assert after[-1] == "default"
    state = rules.get_rules(live_server.rt.db, live_server.rt.policy)
    assert [doc["id"] for doc in state.documents] == after
    page.locator("#rule-break-fix-devices button[aria-label='Move break-fix-devices down']").click()
    expect(page.locator(".flash.info")).to_contain_text("Moved break-fix-devices")
    assert rule_ids(page).index("break-fix-devices") == before.index("break-fix-mac") + 1
