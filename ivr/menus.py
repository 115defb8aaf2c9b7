"""The IVR's two menus: severity (reading each definition) and topic or category."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ivr.actions import Gather, Ref, Say, Stage
from router.core.domain import Category, Severity, Topic


@dataclass(frozen=True)
class MenuOption:
    """One key of the topic/category menu."""

    digit: str
    category: Category
    topic: Topic | None
    label: str  # catalog key


SEVERITY_OPTIONS: Mapping[str, Severity] = {str(s.rank): s for s in Severity}
DEFAULT_SEVERITY = Severity.S3

TOPIC_MENU: tuple[MenuOption, ...] = (
    MenuOption("1", Category.BREAK_FIX, Topic.WINDOWS, "topic.windows"),
    MenuOption("2", Category.BREAK_FIX, Topic.MAC, "topic.mac"),
    MenuOption("3", Category.BREAK_FIX, Topic.LINUX, "topic.linux"),
    MenuOption("4", Category.BREAK_FIX, Topic.IDENTITY, "topic.identity"),
    MenuOption("5", Category.BREAK_FIX, Topic.DEVICES, "topic.devices"),
    MenuOption("6", Category.BREAK_FIX, Topic.DIRECTORY, "topic.directory"),
    MenuOption("7", Category.LICENSING, None, "category.licensing"),
    MenuOption("8", Category.MIGRATION, None, "category.migration"),
    MenuOption("9", Category.ESCALATION, None, "category.escalation"),
    MenuOption("0", Category.BREAK_FIX, Topic.OTHER, "topic.other"),
)
DEFAULT_TOPIC = TOPIC_MENU[-1]
TOPICS_BY_DIGIT = {option.digit: option for option in TOPIC_MENU}


def severity_menu() -> Gather:
    """Return the severity menu, reading each severity's definition."""
    prompts = [Say("severity_intro")]
    for digit, severity in SEVERITY_OPTIONS.items():
        prompts.append(
            Say("severity_option", {"number": digit, "definition": Ref(f"severity.{severity}")})
        )
    return Gather(Stage.SEVERITY, max_digits=1, prompts=tuple(prompts))


def topic_menu() -> Gather:
    """Return the topic and category menu."""
    prompts = [Say("topic_intro")]
    for option in TOPIC_MENU:
        prompts.append(Say("topic_option", {"label": Ref(option.label), "digit": option.digit}))
    return Gather(Stage.TOPIC, max_digits=1, prompts=tuple(prompts))
