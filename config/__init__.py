"""Configuration: settings from the environment and the support policy files."""

from config.policy import Policy, PolicyError, load_policy
from config.settings import Settings, SettingsError

__all__ = ["Policy", "PolicyError", "Settings", "SettingsError", "load_policy"]
