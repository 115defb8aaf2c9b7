"""The intake checklist's vocabulary (SPEC 2.7), shared by every channel.

Pure code: which items the support guide asks for, their wording, and which of them apply to a
contact of a given category and topic. Each channel detects the items in its own input (an
email's text and attachments, the portal form's fields) and reports them under these keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.core.domain import Category, Topic


@dataclass(frozen=True)
class ChecklistItem:
    """One thing the support guide asks a customer to include."""

    key: str
    label: str


ITEMS: tuple[ChecklistItem, ...] = (
    ChecklistItem("description", "A detailed description of the issue"),
    ChecklistItem("troubleshooting", "The troubleshooting steps you have already taken"),
    ChecklistItem(
        "recognised_at", "The date and time the issue was first noticed (with your time zone)"
    ),
    ChecklistItem("errors", "The exact error messages, and screenshots"),
    ChecklistItem(
        "resources",
        "The affected resources: users, systems, groups or applications (names or IDs)",
    ),
    ChecklistItem(
        "agent_logs",
        "The agent log: Windows C:\\Windows\\Temp\\jcagent.log, macOS and Linux "
        "/var/log/jcagent.log",
    ),
    ChecklistItem(
        "service_logs",
        "The service logs: AD Import C:\\Windows\\Temp\\JumpCloud_AD_Integration.log, AD Sync "
        "C:\\Program Files\\JumpCloud\\AD Sync\\adsync.log",
    ),
)
LABELS = {item.key: item.label for item in ITEMS}

AGENT_LOG_TOPICS = frozenset({Topic.WINDOWS, Topic.MAC, Topic.LINUX, Topic.DEVICES, Topic.OTHER})
SERVICE_LOG_TOPICS = frozenset({Topic.DIRECTORY})


def applicable(category: Category | None, topic: Topic | None) -> tuple[str, ...]:
    """Return the keys of the items worth asking for on a contact of this category and topic."""
    if category not in (None, Category.BREAK_FIX):
        return ()
    keys = ["description", "troubleshooting", "recognised_at", "errors", "resources"]
    if topic is None or topic in AGENT_LOG_TOPICS:
        keys.append("agent_logs")
    if topic in SERVICE_LOG_TOPICS:
        keys.append("service_logs")
    return tuple(keys)


def missing_items(items: dict[str, bool]) -> list[str]:
    """Return the applicable items not supplied, in the guide's order."""
    return [item.key for item in ITEMS if items.get(item.key) is False]
