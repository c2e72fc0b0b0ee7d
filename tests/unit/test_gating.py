"""Gate rules: spec validation, thresholds, champion/challenger comparison with tolerance, decisions."""

from __future__ import annotations

import pytest

from airflow_provider_amlretrain.exceptions import AzureMLConfigError, EvaluationError
from airflow_provider_amlretrain.promotion.evaluation import MetricDirection, parse_evaluation_csv
from airflow_provider_amlretrain.promotion.rules import MetricRule, decide, judge


def _result(**metrics: float):
    names = [name.replace("_", " ") for name in metrics]
    return parse_evaluation_csv(",".join(names) + "\n" + ",".join(str(v) for v in metrics.values()) + "\n")


# -- spec validation -------------------------------------------------------------------------------


def test_from_spec_reads_every_key():
    rule = MetricRule.from_spec(
        {
            "metric": "AUC",
            "min": "0.8",
            "max": 1,
            "compare_to_baseline": True,
            "tolerance": "0.01",
            "direction": "higher",
        }
    )
    assert rule == MetricRule("AUC", 0.8, 1.0, True, 0.01, MetricDirection.HIGHER_IS_BETTER)


def test_from_spec_passes_rules_through():
    rule = MetricRule("AUC", minimum=0.5)
    assert MetricRule.from_spec(rule) is rule


def test_zero_threshold_is_a_threshold():
    assert MetricRule.from_spec({"metric": "Coefficient of Determination", "min": 0}).minimum == 0.0


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"metric": "AUC", "min": 0.8, "minimum": 0.9}, r"unknown keys \['minimum'\]"),
        ({"metric": "AUC", "threshold": 0.8}, r"unknown keys \['threshold'\]"),
        ({"metric": "AUC", "min": "high"}, "must be numbers"),
        ({"metric": "AUC", "max": [1]}, "must be numbers"),
        ({"metric": "AUC", "compare_to_baseline": True, "tolerance": "a bit"}, "must be numbers"),
        ({"metric": "AUC"}, "checks nothing"),
        ({"metric": "AUC", "compare_to_baseline": False}, "checks nothing"),
        ({"min": 0.8}, "needs a 'metric'"),
        ({"metric": "   ", "min": 0.8}, "needs a 'metric'"),
        ({"metric": "AUC", "min": 0.8, "direction": "up"}, "direction must be 'higher' or 'lower', not 'up'"),
        ({"metric": "AUC", "compare_to_baseline": True, "tolerance": -0.1}, "tolerance must be >= 0"),
        ({"metric": "RMSE", "compare_to_baseline": True}, "direction is unknown"),
        ("AUC >= 0.8", "must be a dict"),
    ],
)
def test_invalid_specs_are_refused(spec, match):
    with pytest.raises(AzureMLConfigError, match=match):
        MetricRule.from_spec(spec)


def test_unknown_metric_needs_a_direction_only_for_baseline_comparison():
    assert MetricRule.from_spec({"metric": "RMSE", "max": 3}).resolved_direction is None
    rule = MetricRule.from_spec({"metric": "RMSE", "compare_to_baseline": True, "direction": "lower"})
    assert rule.resolved_direction is MetricDirection.LOWER_IS_BETTER


def test_explicit_direction_overrides_the_default():
    rule = MetricRule.from_spec({"metric": "AUC", "compare_to_baseline": True, "direction": "lower"})
    verdict = judge(rule, _result(AUC=0.7), {"AUC": 0.8})
    assert verdict.passed


# -- thresholds ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "passed"),
    [
        ({"metric": "AUC", "min": 0.8}, 0.8, True),
        ({"metric": "AUC", "min": 0.8}, 0.79, False),
        ({"metric": "AUC", "max": 0.99}, 0.99, True),
        ({"metric": "AUC", "max": 0.99}, 0.995, False),
        ({"metric": "AUC", "min": 0.8, "max": 0.99}, 0.9, True),
        ({"metric": "AUC", "min": 0.8, "max": 0.99}, 1.0, False),
    ],
)
def test_thresholds(rule, value, passed):
    verdict = judge(MetricRule.from_spec(rule), _result(AUC=value), None)
    assert verdict.passed is passed
    assert verdict.value == value
    assert verdict.baseline is None


def test_threshold_reason_says_which_side():
    verdict = judge(MetricRule.from_spec({"metric": "AUC", "min": 0.8}), _result(AUC=0.7), None)
    assert verdict.reason == "AUC 0.7 < minimum 0.8"


# -- baseline comparison ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "value", "baseline", "tolerance", "passed"),
    [
        # higher is better
        ("AUC", 0.85, 0.85, 0.0, True),
        ("AUC", 0.86, 0.85, 0.0, True),
        ("AUC", 0.84, 0.85, 0.0, False),
        ("AUC", 0.84, 0.85, 0.01, True),  # exactly at tolerance
        ("AUC", 0.7, 0.9, 0.2, True),  # exactly at tolerance
        ("AUC", 0.839, 0.85, 0.01, False),
        # lower is better
        ("Root Mean Squared Error", 4.0, 4.0, 0.0, True),
        ("Root Mean Squared Error", 3.9, 4.0, 0.0, True),
        ("Root Mean Squared Error", 4.1, 4.0, 0.0, False),
        ("Root Mean Squared Error", 4.5, 4.0, 0.5, True),  # exactly at tolerance
        ("Root Mean Squared Error", 4.3, 4.2, 0.1, True),  # exactly at tolerance, inexact in binary
        ("Root Mean Squared Error", 4.51, 4.0, 0.5, False),
    ],
)
def test_baseline_comparison_with_tolerance(metric, value, baseline, tolerance, passed):
    rule = MetricRule.from_spec({"metric": metric, "compare_to_baseline": True, "tolerance": tolerance})
    verdict = judge(rule, _result(**{metric: value}), {metric: baseline})
    assert verdict.passed is passed, verdict.reason
    assert verdict.baseline == baseline


def test_baseline_names_match_case_insensitively():
    rule = MetricRule.from_spec({"metric": "auc", "compare_to_baseline": True})
    verdict = judge(rule, _result(AUC=0.7), {" AUC ": 0.9})
    assert not verdict.passed
    assert "worse by 0.2" in verdict.reason


@pytest.mark.parametrize("baseline", [None, {}, {"Accuracy": 0.99}])
def test_first_deployment_passes_comparisons(baseline):
    rule = MetricRule.from_spec({"metric": "AUC", "compare_to_baseline": True})
    verdict = judge(rule, _result(AUC=0.1), baseline)
    assert verdict.passed
    assert verdict.baseline is None
    assert "first deployment" in verdict.reason


def test_threshold_still_applies_on_first_deployment():
    rule = MetricRule.from_spec({"metric": "AUC", "min": 0.8, "compare_to_baseline": True})
    assert not judge(rule, _result(AUC=0.5), None).passed


# -- decide ----------------------------------------------------------------------------------------


def test_decide_promotes_only_when_every_rule_passes():
    challenger = _result(AUC=0.9, Accuracy=0.7)
    rules = [{"metric": "AUC", "min": 0.8}, {"metric": "Accuracy", "min": 0.75}]
    decision = decide(rules, challenger, {"AUC": 0.85})
    assert decision.promote is False
    assert [v.passed for v in decision.verdicts] == [True, False]
    summary = decision.to_summary()
    assert summary["metrics"] == {"AUC": 0.9, "Accuracy": 0.7}
    assert summary["baseline_metrics"] == {"AUC": 0.85}
    assert summary["verdicts"][1]["metric"] == "Accuracy"

    assert decide(rules[:1], challenger, None).promote is True
    assert decide(rules[:1], challenger, None).to_summary()["baseline_metrics"] is None


def test_decide_names_every_missing_metric_and_the_columns():
    challenger = _result(AUC=0.9, Accuracy=0.7)
    with pytest.raises(EvaluationError) as info:
        decide(
            [{"metric": "RMSE", "max": 2}, {"metric": "AUC", "min": 0.5}, {"metric": "Recall", "min": 0.5}],
            challenger,
            None,
        )
    message = str(info.value)
    assert "'RMSE', 'Recall'" in message
    assert "its columns are: AUC, Accuracy" in message


def test_decide_needs_rules():
    with pytest.raises(AzureMLConfigError, match="no rules"):
        decide([], _result(AUC=0.9), None)


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ("false", False),
        ("False", False),
        ("", False),
        ("true", True),
        (" True ", True),
        (True, True),
        (0, False),
    ],
)
def test_templated_compare_to_baseline_strings(flag, expected):
    rule = MetricRule.from_spec({"metric": "AUC", "min": 0.5, "compare_to_baseline": flag})
    assert rule.compare_to_baseline is expected


def test_compare_to_baseline_must_be_a_boolean():
    with pytest.raises(
        AzureMLConfigError, match="compare_to_baseline must be true or false, not 'sometimes'"
    ):
        MetricRule.from_spec({"metric": "AUC", "min": 0.5, "compare_to_baseline": "sometimes"})


@pytest.mark.parametrize(
    ("rules", "kind"),
    [
        ("[{'metric': 'AUC', 'min': 0.8}]", "str"),
        ({"metric": "AUC", "min": 0.8}, "dict"),
        (None, "NoneType"),
    ],
)
def test_rules_that_are_not_a_list_say_how_to_fix_them(rules, kind):
    with pytest.raises(AzureMLConfigError, match=rf"must be a list of rules.*not {kind}: wrap a single rule"):
        decide(rules, _result(AUC=0.9), None)
