"""The one eval-results format: direction-aware regression checks, lineage baselines, renderings."""

from __future__ import annotations

import json

import pytest

from nemotron.errors import UserError
from nemotron.node import results as R

PRIMARY = {
    "add": {"metric": "exact_match", "higher_is_better": True},
    "ppl": {"metric": "byte_perplexity", "higher_is_better": False},
}


def _model(label, em, ppl, baseline=None, stage="sft"):
    metrics = {"add": {"exact_match": em}, "ppl": {"byte_perplexity": ppl}}
    return R.model_entry(label, f"m-{label}:v1", stage, metrics, baseline)


@pytest.mark.parametrize(
    ("em", "ppl", "passed"),
    [
        (0.56, 10.4, [True, True]),  # -0.04 absolute, +4 % relative
        (0.54, 10.4, [False, True]),  # -0.06 absolute
        (0.60, 10.6, [True, False]),  # +6 % perplexity
        (0.90, 5.0, [True, True]),  # better in both directions
        (float("nan"), 10.0, [False, True]),  # a NaN score never passes
    ],
)
def test_checks_follow_each_metrics_direction(em, ppl, passed):
    results = R.build_results([_model("sft", 0.60, 10.0), _model("rl", em, ppl, "sft")], PRIMARY, 0.05)
    assert [c["passed"] for c in results["checks"]] == passed
    assert [c["rule"] for c in results["checks"]] == ["absolute drop", "relative increase"]
    assert results["checks"][1]["regression"] == pytest.approx(ppl / 10.0 - 1)
    assert results["passed"] is all(passed)


def test_models_without_a_baseline_are_shown_not_gated():
    results = R.build_results([_model("pretrain", 0.0, 90.0), _model("sft", 0.5, 20.0)], PRIMARY, 0.0)
    assert results["checks"] == [] and results["passed"]


def test_gate_failure_names_model_baseline_and_change(tmp_path):
    results = R.build_results([_model("sft", 0.48, 27.0), _model("rl", 0.37, 72.0, "sft")], PRIMARY, 0.05)
    error = R.gate_failure(results, tmp_path)
    assert isinstance(error, UserError)
    assert "rl vs sft add exact_match -0.1100" in error.one_line() and "+166.67%" in error.one_line()


def test_write_read_and_both_renderings(tmp_path):
    models = [_model("sft", 0.48, 27.0), _model("rl", 0.50, 27.5, "sft", stage="rl.rlvr")]
    R.write_results(tmp_path, R.build_results(models, PRIMARY, 0.05, backend="tiny"))
    table = R.show_results(tmp_path)
    assert table.splitlines()[0].split() == ["task", "(metric)", "sft", "rl"]
    assert "0.5000 (+0.0200)" in table and "27.5000 (+1.85%)" in table and "gate: PASSED" in table
    assert json.loads(R.show_results(tmp_path, "json")) == {
        "models": [
            {"name": "m-sft:v1", "stage": "sft", "metrics": {"add": 0.48, "ppl": 27.0}},
            {"name": "m-rl:v1", "stage": "rl.rlvr", "metrics": {"add": 0.50, "ppl": 27.5}},
        ],
        "passed": True,
    }


def test_directions_guessed_from_names_when_undeclared():
    assert R.higher_is_better("acc") and R.higher_is_better("pass@1/micro")
    assert not R.higher_is_better("word_perplexity") and not R.higher_is_better("bits_per_byte")
    assert R.higher_is_better("loss", declared=True)


def test_per_task_tolerances():
    """Each task on its own scale: 11 points of accuracy fail at 0.05, +12 % perplexity passes at 0.15."""
    models = [_model("sft", 0.48, 27.0), _model("rl", 0.37, 30.24, "sft")]
    results = R.build_results(models, PRIMARY, {"add": 0.05, "ppl": 0.15})
    assert [(c["task"], c["tolerance"], c["passed"]) for c in results["checks"]] == [
        ("add", 0.05, False),
        ("ppl", 0.15, True),
    ]
    assert R.tolerance_for({"default": 0.2}, "anything") == 0.2
    assert "tolerance add 0.05, ppl 0.15" in R.render_table(results)


def test_tolerance_schema_takes_a_number_or_a_mapping():
    from pydantic import ValidationError

    from nemotron.config.schemas.eval import EvalSection

    assert EvalSection(tasks=["a"], tolerance={"a": 0.1}).tolerance == {"a": 0.1}
    with pytest.raises(ValidationError):
        EvalSection(tasks=["a"], tolerance={"a": -1})
