"""Routing rule engine: decide which agency receives a submission, and why.

See ``loader`` for the rules-file language and ``engine`` for the decision
procedure.  Pure core: stdlib, PyYAML and pyahocorasick only.
"""

from .engine import RuleSet
from .loader import load_rules, load_rules_file
from .model import (
    Agency,
    Decision,
    RuleError,
    RulesError,
    Submission,
    TestResult,
    TraceStep,
)
from .text import fold, norm

__all__ = [
    "Agency",
    "Decision",
    "RuleError",
    "RuleSet",
    "RulesError",
    "Submission",
    "TestResult",
    "TraceStep",
    "fold",
    "load_rules",
    "load_rules_file",
    "norm",
]
