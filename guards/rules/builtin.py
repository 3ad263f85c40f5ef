"""The list of built-in rules, loaded by the registry as `guards.rules.builtin:RULES`."""

from __future__ import annotations

from guards.rules.base import Rule
from guards.rules.deps import DependencyRule
from guards.rules.dynamic import ComputedAttrRule, DynamicCodeRule
from guards.rules.escapes import EnvRule, LoadRule, NetworkRule, ProcessRule
from guards.rules.evaluator import ExportRule, FrozenImportRule, FrozenPathStringRule, TamperRule
from guards.rules.files import FilesRule
from guards.rules.introspection import GlobalsWriteRule, IntrospectionRule
from guards.rules.leakage import ValidationLeakRule
from guards.rules.metric import MetricSpoofRule
from guards.rules.model import RULES as MODEL_RULES
from guards.rules.paths import (
    BinaryRule,
    DeletedFileRule,
    InvalidPathRule,
    ModeRule,
    NewFileRule,
    ProtectedPathRule,
    ShadowRule,
    SizeRule,
    SymlinkRule,
)
from guards.rules.reach import RULES as REACH_RULES
from guards.rules.seed import SeedFishingRule
from guards.rules.strings import ComputedStringRule
from guards.rules.timing import BudgetRule, SignalRule, TimerRule
from guards.rules.training import OutsideLoopRule

RULES: list[type[Rule]] = [
    InvalidPathRule, ProtectedPathRule, NewFileRule, BinaryRule, SymlinkRule, ModeRule,
    DeletedFileRule, SizeRule, ShadowRule, FrozenImportRule, TamperRule, ExportRule,
    FrozenPathStringRule,
    TimerRule, SignalRule, BudgetRule, ValidationLeakRule, IntrospectionRule, GlobalsWriteRule,
    DynamicCodeRule, ComputedAttrRule, ProcessRule, NetworkRule, LoadRule, EnvRule,
    MetricSpoofRule, ComputedStringRule, SeedFishingRule, DependencyRule, *REACH_RULES,
    OutsideLoopRule, *MODEL_RULES, FilesRule,
]
