"""Policies: rules as code, loaded once, evaluated on every tool call."""

from .engine import Engine
from .loader import load_policy, load_policy_text
from .model import Policy, Rule, RulePack

__all__ = ["Engine", "Policy", "Rule", "RulePack", "load_policy",
           "load_policy_text"]
