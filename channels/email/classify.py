"""Classify an inbound email: severity markers, category and topic keywords, attachment hints.

Pure code. Keywords and attachment names come from the policy (``categories.toml``); quoted
replies and signatures are ignored so an old thread does not decide a new contact.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from channels.email import checklist
from channels.email.normalise import Attachment
from config.policy import Policy
from router.core.domain import Category, Severity, Topic

CLASSIFY_CHARS = 20_000
SUBJECT_WEIGHT = 3
ATTACHMENT_WEIGHT = 5

# "[Sev1]", "Sev 2", "sev-1", "Severity 2", "Severity: S1", "severity level 3".
_SEVERITY_WORD = re.compile(
    r"\bsev(?:erity)?(?:\s*level)?\s*[-:=#]?\s*s?([123])(?![\d.])", re.IGNORECASE
)
# "[S1]", "(S2)": bracketed, so "Amazon S3" in a body is not a severity.
_SEVERITY_BRACKETED = re.compile(r"[\[(]\s*s([123])\s*[\])]", re.IGNORECASE)
# Bare "S1" is a marker only in the subject.
_SEVERITY_BARE = re.compile(r"(?<![\w.-])s([123])(?![\w.])", re.IGNORECASE)

_REFERENCE = re.compile(r"(?:\[\s*#?|\(\s*#|(?<![\w-])#)C-(\d{1,12})\b", re.IGNORECASE)
_ACCOUNT_LINE = re.compile(
    r"^\s*(?:account|account id|organi[sz]ation|org|customer|tenant)\s*[:=]\s*(\S.{0,99})$",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTE_HEADER = re.compile(
    r"^(on [^\n]{0,300}(\n[^\n]{0,300})?wrote:\s*|-{2,}\s*original message\s*-{2,}\s*|_{10,}\s*"
    r"|from:[^\n]*\n\s*(sent|date):[^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)


def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = r"\s+".join(re.escape(part) for part in keyword.split())
    return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class ClassifierRules:
    """The policy's keyword lists, compiled once."""

    categories: tuple[tuple[Category, tuple[tuple[str, re.Pattern[str]], ...]], ...]
    topics: tuple[tuple[Topic, tuple[tuple[str, re.Pattern[str]], ...], tuple[str, ...]], ...]
    agent_log_name: str
    os_hints: tuple[tuple[Topic, tuple[str, ...]], ...]

    @property
    def service_log_names(self) -> tuple[str, ...]:
        """Return every attachment name a topic lists (the service logs)."""
        return tuple(name for _, _, names in self.topics for name in names)

    @classmethod
    def from_policy(cls, policy: Policy) -> ClassifierRules:
        """Compile the keyword lists of ``policy``."""
        hints = policy.agent_log
        return cls(
            categories=tuple(
                (category, tuple((k, _keyword_pattern(k)) for k in rule.keywords))
                for category, rule in policy.categories.items()
            ),
            topics=tuple(
                (
                    topic,
                    tuple((k, _keyword_pattern(k)) for k in rule.keywords),
                    tuple(rule.attachments),
                )
                for topic, rule in policy.topics.items()
            ),
            agent_log_name=hints.name,
            # /var/log is shared by macOS and Linux, so a Linux word wins a tie (listed first).
            os_hints=(
                (Topic.LINUX, tuple(hints.linux_hints)),
                (Topic.WINDOWS, tuple(hints.windows_hints)),
                (Topic.MAC, tuple(hints.mac_hints)),
            ),
        )


@dataclass(frozen=True)
class Classification:
    """What the message says about itself, with the evidence for each conclusion."""

    severity: Severity
    severity_marker: str | None  # the text that set it; None: unstated (S3 for staff to re-grade)
    category: Category
    category_keywords: tuple[str, ...]
    topic: Topic | None
    topic_reasons: tuple[str, ...]
    checklist: checklist.Checklist
    account_hint: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the classification and its evidence for the timeline."""
        return {
            "severity": self.severity.value,
            "severity_marker": self.severity_marker,
            "category": self.category.value,
            "category_keywords": list(self.category_keywords),
            "topic": self.topic.value if self.topic else None,
            "topic_reasons": list(self.topic_reasons),
            "checklist_missing": list(self.checklist.missing),
            "account_hint": self.account_hint,
        }


def classify(
    subject: str, text: str, attachments: Sequence[Attachment], rules: ClassifierRules
) -> Classification:
    """Classify a message from its subject, body text and attachments."""
    body = own_text(text)[:CLASSIFY_CHARS]
    severity, marker = severity_of(subject, body)
    category, category_keywords = _best_category(subject, body, rules)
    topic, topic_reasons = _best_topic(subject, body, attachments, rules)
    found = checklist.detect(
        f"{subject}\n{body}",
        attachments,
        category=category,
        topic=topic,
        agent_log_name=rules.agent_log_name,
        service_log_names=rules.service_log_names,
    )
    hint = _ACCOUNT_LINE.search(body)
    return Classification(
        severity=severity,
        severity_marker=marker,
        category=category,
        category_keywords=category_keywords,
        topic=topic,
        topic_reasons=topic_reasons,
        checklist=found,
        account_hint=hint.group(1).strip() if hint else None,
    )


def own_text(text: str) -> str:
    """Return what the sender wrote: no quoted lines, earlier messages or signature."""
    cut = _QUOTE_HEADER.search(text)
    if cut:
        text = text[: cut.start()]
    lines: list[str] = []
    for line in text.split("\n"):
        if line.rstrip() == "--":  # the signature separator ("-- ")
            break
        if not line.lstrip().startswith(">"):
            lines.append(line)
    return "\n".join(lines).strip()


def severity_of(subject: str, body: str) -> tuple[Severity, str | None]:
    """Return the severity a marker states (subject first, then body), else S3 and None."""
    for pattern in (_SEVERITY_WORD, _SEVERITY_BRACKETED, _SEVERITY_BARE):
        match = pattern.search(subject)
        if match:
            return Severity(f"S{match.group(1)}"), match.group(0).strip()
    for pattern in (_SEVERITY_WORD, _SEVERITY_BRACKETED):
        match = pattern.search(body)
        if match:
            return Severity(f"S{match.group(1)}"), match.group(0).strip()
    return Severity.S3, None


def contact_reference(subject: str) -> int | None:
    """Return the contact id a subject names ([#C-1042], [C-1042], #C-1042), if any."""
    match = _REFERENCE.search(subject)
    return int(match.group(1)) if match else None


def _hits(
    patterns: tuple[tuple[str, re.Pattern[str]], ...], subject: str, body: str
) -> tuple[int, tuple[str, ...]]:
    score = 0
    found: list[str] = []
    for keyword, pattern in patterns:
        if pattern.search(subject):
            score += SUBJECT_WEIGHT
            found.append(keyword)
        elif pattern.search(body):
            score += 1
            found.append(keyword)
    return score, tuple(found)


def _best_category(
    subject: str, body: str, rules: ClassifierRules
) -> tuple[Category, tuple[str, ...]]:
    best: tuple[int, Category, tuple[str, ...]] = (0, Category.BREAK_FIX, ())
    for category, patterns in rules.categories:
        score, found = _hits(patterns, subject, body)
        if score > best[0]:  # ties keep the earlier category (break-fix is listed first)
            best = (score, category, found)
    return best[1], best[2]


def _best_topic(
    subject: str, body: str, attachments: Sequence[Attachment], rules: ClassifierRules
) -> tuple[Topic | None, tuple[str, ...]]:
    scores: dict[Topic, int] = {}
    reasons: dict[Topic, list[str]] = {}
    for topic, patterns, names in rules.topics:
        score, found = _hits(patterns, subject, body)
        reasons[topic] = [f"keyword:{keyword}" for keyword in found]
        wanted = {name.lower() for name in names}
        for attachment in attachments:
            if attachment.basename.lower() in wanted:
                score += ATTACHMENT_WEIGHT
                reasons[topic].append(f"attachment:{attachment.basename}")
        scores[topic] = score
    agent = rules.agent_log_name.lower()
    for attachment in attachments:
        if attachment.basename.lower() != agent:
            continue
        os_topic = _agent_log_os(attachment, body, rules)
        if os_topic is not None:
            scores[os_topic] = scores.get(os_topic, 0) + ATTACHMENT_WEIGHT
            reasons.setdefault(os_topic, []).append(f"attachment:{attachment.basename}")
    ranked = [topic for topic, _, _ in rules.topics]
    best = max(ranked, key=lambda topic: (scores.get(topic, 0), -ranked.index(topic)))
    if scores.get(best, 0) == 0:
        return None, ()
    return best, tuple(reasons.get(best, ()))


def _agent_log_os(attachment: Attachment, body: str, rules: ClassifierRules) -> Topic | None:
    """Return the OS a jcagent.log comes from: its path, its first lines, then the message."""
    for source in (attachment.filename, attachment.head, body):
        lowered = source.lower()
        counts = [
            (sum(1 for hint in hints if hint.lower() in lowered), topic)
            for topic, hints in rules.os_hints
        ]
        best = max(counts, key=lambda pair: pair[0])
        if best[0] > 0:
            return best[1]
    return None
