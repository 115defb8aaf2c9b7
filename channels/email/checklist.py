"""The intake checklist (SPEC 2.7): which of the items the guide asks for a message contains.

Pure code. Text cues and attachments decide each item; items that cannot help with the
contact's topic are not asked for (agent logs for OS and device problems, the AD Import / AD
Sync service logs for directory problems), and only break-fix contacts have a checklist.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from channels.email.normalise import Attachment
from router.core.checklist import ITEMS, applicable
from router.core.domain import Category, Topic

DESCRIPTION_MIN_WORDS = 20

_TROUBLESHOOTING = re.compile(
    r"\b(tried|trying|troubleshoot\w*|restart(ed|ing)?|reboot(ed|ing)?|re-?install(ed|ing)?"
    r"|re-?enroll(ed|ing)?|cleared|reset|rolled back|roll(ed)? back|workaround|checked"
    r"|verified|already|steps (taken|so far)|so far (we|i)|we have (also )?(tested|confirmed))\b",
    re.I,
)
_MONTH = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_WEEKDAY = r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_WHEN = re.compile(
    r"(\b\d{4}-\d{1,2}-\d{1,2}\b"
    r"|\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b"
    r"|\b\d{1,2}:\d{2}\s*(am|pm|utc|gmt|[a-z]{2,4}t)?\b"
    r"|\b\d{1,2}\s*(am|pm)\b"
    rf"|\b{_MONTH}\s+\d{{1,2}}(st|nd|rd|th)?\b"
    rf"|\b\d{{1,2}}(st|nd|rd|th)?\s+(of\s+)?{_MONTH}"
    r"|\b(yesterday|this (morning|afternoon|evening|week)|last (night|week|month)|earlier today)\b"
    r"|\b\d+\s+(minutes?|hours?|days?|weeks?)\s+ago\b"
    rf"|\b(since|started|starting|began|noticed|first (saw|seen|noticed)|recogni[sz]ed)\b"
    rf".{{0,40}}\b({_WEEKDAY}|today|tonight|morning|\d)"
    r")",
    re.I,
)
_ERRORS = re.compile(
    r"(\berror\s*(message|code|text)?\s*[:=#]|\berror message\b|\bexception\b|\btraceback\b"
    r"|\bstack ?trace\b|\bscreen ?shots?\b|\b0x[0-9a-f]{4,}\b|\b(http|status)\s*[45]\d\d\b"
    r"|\bsays\s*[:\"']|\bshows\s*[:\"']|\"[^\"\n]{8,}\"|“[^”\n]{8,}”)",
    re.I,
)
_RESOURCES = re.compile(
    r"(\b(users?|groups?|systems?|devices?|applications?|apps?|computers?|laptops?|servers?"
    r"|machines?|hosts?|hostnames?|endpoints?)\s*[:#(]"
    r"|\b(\d+|all|several|some|multiple|many|few|two|three|our)\s+(\w+\s+)?(users|groups"
    r"|systems|devices|applications|apps|computers|laptops|servers|machines|employees"
    r"|endpoints|hosts)\b"
    r"|\baffected\b"
    r"|\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b"
    r"|\b[\w-]+\.(local|corp|lan|internal|ad)\b"
    r"|\b(user|group|system|device|application|host|computer)\s+(named|called|id)\b)",
    re.I,
)
_IMAGE_NAME = re.compile(r"\.(png|jpe?g|gif|bmp|tiff?|webp|heic)$|screen ?shot", re.I)


@dataclass(frozen=True)
class Checklist:
    """Which applicable items a message contains, in the guide's order."""

    items: tuple[tuple[str, bool], ...]

    @property
    def missing(self) -> tuple[str, ...]:
        """Return the keys of the applicable items the message lacks."""
        return tuple(key for key, present in self.items if not present)

    def to_dict(self) -> dict[str, bool]:
        """Return {item key: present} for the applicable items."""
        return dict(self.items)


def detect(
    text: str,
    attachments: Sequence[Attachment],
    *,
    category: Category | None,
    topic: Topic | None,
    agent_log_name: str,
    service_log_names: Sequence[str],
) -> Checklist:
    """Return which applicable checklist items ``text`` and ``attachments`` contain."""
    names = [attachment.basename.lower() for attachment in attachments]
    agent = agent_log_name.lower()
    agent_stem = agent.rsplit(".", 1)[0]
    services = [name.lower() for name in service_log_names]
    service_stems = [name.rsplit(".", 1)[0] for name in services]
    found = {
        "description": len(text.split()) >= DESCRIPTION_MIN_WORDS,
        "troubleshooting": bool(_TROUBLESHOOTING.search(text)),
        "recognised_at": bool(_WHEN.search(text)),
        "errors": bool(_ERRORS.search(text))
        or any(
            attachment.content_type.startswith("image/") or _IMAGE_NAME.search(attachment.basename)
            for attachment in attachments
        ),
        "resources": bool(_RESOURCES.search(text)),
        "agent_logs": any(name == agent or name.startswith(agent_stem) for name in names),
        "service_logs": any(
            name in services or any(name.startswith(stem) for stem in service_stems)
            for name in names
        ),
    }
    return Checklist(tuple((key, found[key]) for key in applicable(category, topic)))


def missing_labels(checklist: dict[str, object]) -> list[str]:
    """Return the labels of the items a stored checklist marks as missing, in the guide's order."""
    return [item.label for item in ITEMS if checklist.get(item.key) is False]
