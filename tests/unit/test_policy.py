"""The shipped policy loads, and each kind of bad policy file stops start-up clearly."""

from __future__ import annotations

import shutil
from datetime import time
from pathlib import Path

import pytest

from config.policy import Policy, PolicyError, load_policy
from config.settings import DEFAULT_POLICY_DIR
from router.core.domain import Category, Channel, Severity, Tier


def test_shipped_policy_matches_the_support_guide(policy: Policy) -> None:
    assert policy.trial_days == 30
    assert set(policy.tiers) == set(Tier)
    assert policy.tiers[Tier.PREMIUM].channels[Channel.VOICE] == "open"
    assert policy.tiers[Tier.STANDARD].channels[Channel.VOICE] == "closed"
    assert policy.tiers[Tier.STANDARD].channels[Channel.CHAT] == "bot"
    assert policy.tiers[Tier.FREE].channels[Channel.EMAIL] == "help_center"
    premium = policy.sla_policies["premium"].targets
    assert [premium[s].duration.total_seconds() / 3600 for s in Severity] == [1, 2, 4]
    standard = policy.sla_policies["standard"].targets
    assert standard[Severity.S1].kind == "business"
    assert standard[Severity.S3].kind == "next_business_day"
    assert policy.sla_categories == frozenset({Category.BREAK_FIX})
    assert len(policy.regions) == 10
    assert policy.regions["il"].timezone == "Asia/Jerusalem"
    assert policy.regions["us"].hours == ((time(9), time(17)),)
    assert "fallback" in policy.queues
    assert policy.rules.route  # compiled once at load


@pytest.mark.parametrize(
    ("dialled", "region"),
    [
        ("+18009319627", "ca"),  # phonenumbers files it under US; the table says Canada
        ("+18554819316", "us"),
        ("+1 (800) 931-9627", "ca"),
        ("0008000503382", "in"),  # Indian domestic toll-free, no E.164 form
        ("000 800 050 3382", "in"),
        ("+448000668529", "gb"),
        ("+9721809349196", "il"),
    ],
)
def test_dialled_number_selects_the_region(policy: Policy, dialled: str, region: str) -> None:
    found = policy.region_for_number(dialled)
    assert found is not None and found.key == region


def test_unknown_number_has_no_region(policy: Policy) -> None:
    assert policy.region_for_number("+15555550100") is None
    assert policy.default_region == "us"


def broken(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """Copy the shipped policy and replace one piece of one file."""
    directory = tmp_path / "policy"
    shutil.copytree(DEFAULT_POLICY_DIR, directory)
    path = directory / f"{file}.toml"
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {file}.toml"
    path.write_text(text.replace(old, new, 1))
    return directory


@pytest.mark.parametrize(
    ("file", "old", "new", "key", "message"),
    [
        # a wrong (unknown) key
        (
            "regions",
            'language = "en-AU"',
            'language = "en-AU"\nlanguge = "x"',
            "regions.au.languge",
            "unknown key",
        ),
        (
            "tiers",
            "base_priority = 70",
            "base_priorty = 70",
            "tiers.premium.base_priority",
            "'base_priorty' looks like a misspelling",
        ),
        # a wrong type
        (
            "tiers",
            "base_priority = 70",
            'base_priority = "60"',
            "tiers.premium.base_priority",
            "must be a whole number, not a string",
        ),
        (
            "tiers",
            "trial_days = 30",
            "trial_days = true",
            "trial_days",
            "must be a whole number, not true or false",
        ),
        (
            "sla",
            "warning_fraction = 0.75",
            'warning_fraction = "most"',
            "warning_fraction",
            "must be a number",
        ),
        # a wrong value
        (
            "regions",
            'timezone = "Asia/Jerusalem"',
            'timezone = "Asia/Jerusalm"',
            "regions.il.timezone",
            "unknown time zone 'Asia/Jerusalm'",
        ),
        (
            "regions",
            'country = "FR"',
            'country = "XF"',
            "regions.fr.country",
            "unknown country code 'XF'",
        ),
        (
            "regions",
            'country = "GB"',
            'country = "GB"\nsubdivision = "ZZZ"',
            "regions.gb.subdivision",
            "unknown subdivision",
        ),
        (
            "regions",
            'e164 = "+448000668529"',
            'e164 = "+44800"',
            "regions.gb.e164",
            "not a valid E.164 number",
        ),
        (
            "regions",
            'e164 = "+33805988144"',
            'e164 = "not a number"',
            "regions.fr.e164",
            "is not a phone number",
        ),
        (
            "regions",
            'e164 = "+33805988144"',
            'e164 = "+18554819316"',
            "regions.us.e164",
            "already used by region 'fr'",
        ),
        (
            "regions",
            'language = "en-GB"',
            'language = "english"',
            "regions.gb.language",
            "language tag",
        ),
        (
            "regions",
            'default_region = "us"',
            'default_region = "xx"',
            "default_region",
            "unknown region 'xx'",
        ),
        (
            "tiers",
            'sla_policy = "premium"',
            'sla_policy = "gold"',
            "tiers.premium.sla_policy",
            "unknown SLA policy 'gold'",
        ),
        (
            "tiers",
            'voice = "open", email',
            'voice = "sometimes", email',
            "tiers.premium.channels.voice",
            "unknown mode 'sometimes'",
        ),
        (
            "sla",
            'S2 = "2h"',
            'S2 = "two hours"',
            "policies.premium.targets.S2",
            "must be a duration",
        ),
        ("sla", 'S1 = "1h"', 'S4 = "1h"', "policies.premium.targets.S4", "unknown value 'S4'"),
        (
            "queues",
            'kind = "bot"',
            'kind = "robot"',
            "queues.supportbot.kind",
            "unknown value 'robot'",
        ),
        (
            "categories",
            "[topics.mac]",
            "[topics.macintosh]",
            "topics.macintosh",
            "unknown value 'macintosh'",
        ),
        # an unknown queue in the routing rules
        ("routing", 'queue = "cse-windows"', 'queue = "cse-windowz"', "rules[9]", "cse-windowz"),
    ],
)
def test_bad_policy_names_file_and_key(
    tmp_path: Path, file: str, old: str, new: str, key: str, message: str
) -> None:
    directory = broken(tmp_path, file, old, new)
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    error = caught.value
    assert error.file.endswith(f"{file}.toml")
    assert error.key.startswith(key), error
    assert message in str(error)
    assert str(error).startswith(f"{directory / file}.toml: {error.key}: ")


def test_premium_must_outrank_every_other_tier(tmp_path: Path) -> None:
    # Standard S1 (base 60 + boost 20) plus its escalation (+10) would reach premium S3 (70).
    directory = broken(tmp_path, "tiers", "base_priority = 30", "base_priority = 60")
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert caught.value.key == "tiers.standard.base_priority"
    assert "premium must be served first: standard's highest priority (90" in str(caught.value)


def test_missing_policy_file(tmp_path: Path) -> None:
    directory = tmp_path / "policy"
    shutil.copytree(DEFAULT_POLICY_DIR, directory)
    (directory / "queues.toml").unlink()
    with pytest.raises(PolicyError, match=r"queues\.toml: policy file is missing"):
        load_policy(directory)


def test_invalid_toml(tmp_path: Path) -> None:
    directory = broken(tmp_path, "tiers", "trial_days = 30", "trial_days = = 30")
    with pytest.raises(PolicyError, match=r"tiers\.toml: not valid TOML"):
        load_policy(directory)


def test_rule_without_default_is_refused(tmp_path: Path) -> None:
    directory = broken(tmp_path, "routing", "default = true\n", "")
    with pytest.raises(PolicyError, match=r"routing\.toml: .*default"):
        load_policy(directory)


def test_fallback_queue_is_required(tmp_path: Path) -> None:
    directory = broken(
        tmp_path,
        "queues",
        '[queues.fallback]\nname = "Voice fallback (service degraded)"\nteam = "cse"\n',
        "",
    )
    with pytest.raises(PolicyError, match=r"queues\.fallback: is required"):
        load_policy(directory)
