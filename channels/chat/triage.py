"""Triage of a Contact Support form: the checklist items it supplies, and its likely topic.

Pure: no Flask, no database. Which items apply is the shared vocabulary's rule (SPEC 2.7), the
same as for email; this module only says what the form's fields and attachments supply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from channels.chat.forms import PortalRequest
from config.policy import AgentLogHints, Classifier
from router.core.checklist import applicable
from router.core.checklist import missing_items as shared_missing_items
from router.core.domain import Category, Topic

AGENT_LOG = "jcagent.log"
SERVICE_LOGS = ("jumpcloud_ad_integration.log", "adsync.log")
SCREENSHOT_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".heic", ".tif", ".tiff")


def attachment_basename(name: str) -> str:
    """Return an attachment's file name without any Windows or POSIX directory, lower-cased."""
    return name.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()


def agent_log_topic(form: PortalRequest, hints: AgentLogHints) -> Topic | None:
    """Return the OS a jcagent.log attachment points to, from its path and the form's text."""
    paths = [a for a in form.attachments if attachment_basename(a) == AGENT_LOG]
    if not paths:
        return None
    source = "\n".join([*paths, form.subject, form.description]).lower()
    # Linux before mac: the mac hint "/var/log" is where the Linux agent logs too, so a Linux
    # word anywhere is the better evidence.
    for topic, words in (
        (Topic.WINDOWS, hints.windows_hints),
        (Topic.LINUX, hints.linux_hints),
        (Topic.MAC, hints.mac_hints),
    ):
        if any(word.lower() in source for word in words):
            return topic
    return None


def suggest_topic(
    form: PortalRequest, topics: Mapping[Topic, Classifier], hints: AgentLogHints
) -> Topic | None:
    """Suggest a topic when the form has none: service logs, the agent log, then keywords."""
    names = {attachment_basename(a) for a in form.attachments}
    for topic, classifier in topics.items():
        if any(a.lower() in names for a in classifier.attachments):
            return topic
    by_agent_log = agent_log_topic(form, hints)
    if by_agent_log is not None:
        return by_agent_log
    text = f"{form.subject}\n{form.description}".lower()
    for topic, classifier in topics.items():
        for keyword in classifier.keywords:
            if re.search(rf"(?<!\w){re.escape(keyword.lower())}(?!\w)", text):
                return topic
    return None


def checklist(form: PortalRequest, topic: Topic | None, category: Category) -> dict[str, bool]:
    """Return which intake-checklist items (SPEC 2.7) the form supplies, for the items that apply.

    Which items apply (break-fix only; agent logs where the agent is involved, service logs on
    directory issues) is the shared vocabulary's rule, the same as for email.
    """
    names = [attachment_basename(a) for a in form.attachments]
    supplied = {
        "description": True,
        "troubleshooting": form.troubleshooting is not None,
        "recognised_at": form.recognised_at is not None,
        "errors": bool(form.error_messages) or any(n.endswith(SCREENSHOT_SUFFIXES) for n in names),
        "resources": bool(form.resources),
        "agent_logs": AGENT_LOG in names,
        "service_logs": any(n in SERVICE_LOGS for n in names),
    }
    return {key: supplied[key] for key in applicable(category, topic)}


def missing_items(items: Mapping[str, Any]) -> list[str]:
    """Return the checklist items not supplied, in the guide's order."""
    return shared_missing_items({key: bool(value) for key, value in items.items()})
