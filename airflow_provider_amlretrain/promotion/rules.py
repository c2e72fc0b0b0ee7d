"""Promotion rules on evaluation metrics: thresholds and champion/challenger comparison."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_amlretrain.exceptions import AzureMLConfigError, EvaluationError
from airflow_provider_amlretrain.promotion.evaluation import (
    EvaluationResult,
    MetricDirection,
    default_direction,
    normalize_metric_name,
)

_RULE_KEYS = {"metric", "min", "max", "compare_to_baseline", "tolerance", "direction"}


@dataclass(frozen=True)
class MetricRule:
    """
    One condition a retrained model must meet to be promoted.

    :param metric: Metric name as in the Evaluate Model CSV (case-insensitive).
    :param minimum: The value must be at least this.
    :param maximum: The value must be at most this.
    :param compare_to_baseline: The value must not be worse than the production model's by more
        than ``tolerance`` (passes when nothing is in production yet).
    :param tolerance: How much worse than the baseline is still accepted (absolute, >= 0).
    :param direction: Whether higher or lower is better; defaults from the metric's name.
    """

    metric: str
    minimum: float | None = None
    maximum: float | None = None
    compare_to_baseline: bool = False
    tolerance: float = 0.0
    direction: MetricDirection | None = None

    def __post_init__(self) -> None:
        if not self.metric or not self.metric.strip():
            raise AzureMLConfigError("A gate rule needs a 'metric' name.")
        if self.minimum is None and self.maximum is None and not self.compare_to_baseline:
            raise AzureMLConfigError(
                f"Gate rule on {self.metric!r} checks nothing: give 'min', 'max' or 'compare_to_baseline': true."
            )
        if self.tolerance < 0:
            raise AzureMLConfigError(
                f"Gate rule on {self.metric!r}: tolerance must be >= 0, not {self.tolerance}."
            )
        if self.compare_to_baseline and self.resolved_direction is None:
            raise AzureMLConfigError(
                f"Gate rule on {self.metric!r}: this metric's direction is unknown; set direction to "
                "'higher' or 'lower' (is a larger value better?)."
            )

    @property
    def resolved_direction(self) -> MetricDirection | None:
        """The direction given, or the one the metric's name implies."""
        return self.direction or default_direction(self.metric)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | MetricRule) -> MetricRule:
        """
        Build a rule from a dict such as ``{"metric": "AUC", "min": 0.8, "compare_to_baseline": True, "tolerance": 0.01}``.

        :param spec: The rule as plain data (templatable), or a rule.
        """
        if isinstance(spec, MetricRule):
            return spec
        if not isinstance(spec, Mapping):
            raise AzureMLConfigError(f"A gate rule must be a dict, not {type(spec).__name__}: {spec!r}.")
        unknown = set(spec) - _RULE_KEYS
        if unknown:
            raise AzureMLConfigError(
                f"Gate rule {dict(spec)!r} has unknown keys {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}."
            )
        try:
            direction = MetricDirection(spec["direction"]) if spec.get("direction") else None
        except ValueError as err:
            raise AzureMLConfigError(
                f"Gate rule on {spec.get('metric')!r}: direction must be 'higher' or 'lower', not {spec['direction']!r}."
            ) from err
        try:
            return cls(
                metric=str(spec.get("metric") or ""),
                minimum=float(spec["min"]) if spec.get("min") is not None else None,
                maximum=float(spec["max"]) if spec.get("max") is not None else None,
                compare_to_baseline=_flag(spec.get("compare_to_baseline", False), spec),
                tolerance=float(spec.get("tolerance", 0.0)),
                direction=direction,
            )
        except (TypeError, ValueError) as err:
            raise AzureMLConfigError(
                f"Gate rule {dict(spec)!r}: min, max and tolerance must be numbers."
            ) from err


def _flag(value: Any, spec: Mapping[str, Any]) -> bool:
    """A boolean rule key; a templated value arrives as a string, where ``bool("false")`` would be true."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0", ""):
            return False
        raise AzureMLConfigError(
            f"Gate rule {dict(spec)!r}: compare_to_baseline must be true or false, not {value!r}."
        )
    return bool(value)


@dataclass(frozen=True)
class RuleVerdict:
    """
    How one rule judged the challenger.

    :param metric: The rule's metric.
    :param value: The challenger's value.
    :param baseline: The production model's value, when compared.
    :param passed: Whether the rule holds.
    :param reason: A human explanation.
    """

    metric: str
    value: float
    baseline: float | None
    passed: bool
    reason: str

    def to_summary(self) -> dict[str, Any]:
        """Plain data for XCom."""
        return {
            "metric": self.metric,
            "value": self.value,
            "baseline": self.baseline,
            "passed": self.passed,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class GateDecision:
    """
    The gate's outcome.

    :param promote: Whether every rule passed.
    :param verdicts: One per rule.
    :param metrics: The challenger's metrics.
    :param baseline_metrics: The production model's metrics, if any.
    """

    promote: bool
    verdicts: tuple[RuleVerdict, ...]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float] | None

    def to_summary(self) -> dict[str, Any]:
        """Plain, secret-free data for XCom."""
        return {
            "promote": self.promote,
            "metrics": self.metrics,
            "baseline_metrics": self.baseline_metrics,
            "verdicts": [v.to_summary() for v in self.verdicts],
        }


def _baseline_value(baseline: Mapping[str, float], metric: str) -> float | None:
    wanted = normalize_metric_name(metric)
    for name, value in baseline.items():
        if normalize_metric_name(name) == wanted:
            return float(value)
    return None


def judge(
    rule: MetricRule, challenger: EvaluationResult, baseline: Mapping[str, float] | None
) -> RuleVerdict:
    """
    Apply one rule.

    :param rule: The rule.
    :param challenger: The retrained model's evaluation.
    :param baseline: The production model's metrics, or ``None`` when nothing is deployed.
    """
    value = challenger.get(rule.metric)
    reasons: list[str] = []
    passed = True
    if rule.minimum is not None:
        ok = value >= rule.minimum
        passed &= ok
        reasons.append(f"{rule.metric} {value:.6g} {'>=' if ok else '<'} minimum {rule.minimum:.6g}")
    if rule.maximum is not None:
        ok = value <= rule.maximum
        passed &= ok
        reasons.append(f"{rule.metric} {value:.6g} {'<=' if ok else '>'} maximum {rule.maximum:.6g}")
    base_value: float | None = None
    if rule.compare_to_baseline:
        base_value = _baseline_value(baseline, rule.metric) if baseline else None
        if base_value is None:
            reasons.append(
                f"no production value of {rule.metric} to compare with (first deployment): accepted"
            )
        else:
            higher = rule.resolved_direction is MetricDirection.HIGHER_IS_BETTER
            worse_by = (base_value - value) if higher else (value - base_value)
            # Exactly at tolerance passes: absorb the float error of the subtraction (0.85 - 0.84 > 0.01).
            ok = worse_by <= rule.tolerance or math.isclose(
                worse_by, rule.tolerance, rel_tol=1e-9, abs_tol=1e-12
            )
            passed &= ok
            word = "higher" if higher else "lower"
            reasons.append(
                f"{rule.metric} {value:.6g} vs production {base_value:.6g} ({word} is better, tolerance "
                f"{rule.tolerance:.6g}): {'not worse than allowed' if ok else f'worse by {worse_by:.6g}'}"
            )
    return RuleVerdict(
        metric=rule.metric, value=value, baseline=base_value, passed=passed, reason="; ".join(reasons)
    )


def decide(
    rules: Iterable[Mapping[str, Any] | MetricRule],
    challenger: EvaluationResult,
    baseline: Mapping[str, float] | None,
) -> GateDecision:
    """
    Apply every rule; promote only when all pass.

    :param rules: Rules as dicts or :class:`MetricRule`.
    :param challenger: The retrained model's evaluation.
    :param baseline: The production model's metrics, or ``None``.
    :raises EvaluationError: when a rule's metric is missing (naming the columns found).
    """
    if isinstance(rules, str | Mapping) or not isinstance(rules, Iterable):
        raise AzureMLConfigError(
            f"The evaluation gate's rules must be a list of rules, e.g. [{{'metric': 'AUC', 'min': 0.8}}], not "
            f"{type(rules).__name__}: wrap a single rule in a list; a templated list renders as text unless the "
            "DAG sets render_template_as_native_obj=True."
        )
    parsed = [MetricRule.from_spec(rule) for rule in rules]
    if not parsed:
        raise AzureMLConfigError(
            "The evaluation gate has no rules: give at least one, e.g. {'metric': 'AUC', 'min': 0.8}."
        )
    missing = [rule.metric for rule in parsed if not _has(challenger, rule.metric)]
    if missing:
        raise EvaluationError(
            f"The evaluation lacks metric(s) {', '.join(map(repr, missing))}; its columns are: "
            f"{', '.join(challenger.columns)}."
        )
    verdicts = tuple(judge(rule, challenger, baseline) for rule in parsed)
    return GateDecision(
        promote=all(v.passed for v in verdicts),
        verdicts=verdicts,
        metrics=dict(challenger.metrics),
        baseline_metrics=dict(baseline) if baseline else None,
    )


def _has(result: EvaluationResult, metric: str) -> bool:
    try:
        result.get(metric)
    except EvaluationError:
        return False
    return True
