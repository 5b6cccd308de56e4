"""The one eval-results format, its direction-aware regression gate, and how it is shown.

Both eval backends write ``results.json`` in an eval-results artifact through ``write_results``: the
tiny backend (lm-eval on local tasks) and the megatron backend (NeMo-Evaluator ``results.yml`` files,
read by ``parse_results_yml``). ``nemotron super3 eval --show NAME`` renders it with ``render_table``
and ``--format json`` prints ``scripts_view``.

Format (``format: nemotron-eval-results``, ``version: 1``)::

    models:  [{label, name, stage, baseline, metrics: {task: {metric: value}}}, ...]  # table columns, in order
    primary: {task: {metric, higher_is_better}}                                     # what the gate judges
    tolerance, tolerance_rule, checks: [...], passed, plus backend extras (tasks, limit, runtime_s ...)

``label`` is the column title (``pretrain``, ``sft``, ``rl.rlvr``, ``fp8``, ``nvfp4``), ``name`` the
artifact reference (``tiny-sft-model:v3``; a model inside a quantized-model artifact adds
``/config``), ``stage`` the stage that made it, and ``baseline`` the label of the evaluated model it
was made from (its lineage parent; RL -> SFT, FP8/NVFP4 -> RL) or null (the pretrained model is a
reference column, see ``REFERENCE_SLOTS``). The gate compares every model with its baseline, task by
task on the primary metric, in the metric's own direction (``compare``):

- higher-is-better metrics (accuracy, exact match; fractions in [0, 1]) may drop by at most
  ``tolerance`` absolute (0.05 = five points);
- lower-is-better metrics (perplexity, loss) may rise by at most ``tolerance`` relative
  (0.05 = 5 % higher perplexity).

Why two rules: accuracy is already a fraction, and a relative rule would make a 0.02 -> 0.01 change on
a weak model "50 %"; perplexity has no fixed scale, so only a ratio means the same everywhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nemotron.errors import UserError

RESULTS_FILE = "results.json"
RESULTS_FORMAT = "nemotron-eval-results"
RESULTS_VERSION = 1
TOLERANCE_RULE = (
    "each model vs the model it was made from, on each task's primary metric: higher-is-better metrics may drop "
    "by at most the tolerance (absolute); lower-is-better metrics (perplexity) may rise by at most the tolerance "
    "(relative)"
)
COMPARE_SLOTS = ("pretrain_model", "sft_model")
"""Eval inputs holding earlier stages' models (stage ports), evaluated before ``model``, in this order."""
REFERENCE_SLOTS = ("pretrain_model",)
"""Inputs shown for reference but never a baseline: SFT deliberately changes what the model does (chat
turns instead of raw text; in the tiny chain prose perplexity goes from ~3.6 to ~26), so gating the SFT
model against its pretrained base would fail every healthy run."""
LOWER_IS_BETTER_HINTS = ("perplexity", "ppl", "loss", "bits_per_byte", "bpb", "error", "wer")
"""Metric-name fragments meaning lower is better, for evaluators that do not declare a direction."""


# ------------------------------------------------------------------------------------------ building


def higher_is_better(metric: str, declared: bool | None = None) -> bool:
    """The metric's direction: what the evaluator declared, else guessed from its name."""
    if declared is not None:
        return bool(declared)
    name = metric.lower()
    return not any(hint in name for hint in LOWER_IS_BETTER_HINTS)


def model_entry(
    label: str, name: str, stage: str, metrics: dict[str, dict[str, float]], baseline: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One evaluated model (a table column)."""
    return {"label": label, "name": name, "stage": stage, "baseline": baseline, "metrics": metrics, **extra}


def first_metric_primary(models: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``primary`` when the evaluator names no main metric: each task's first metric, direction by name."""
    primary: dict[str, dict[str, Any]] = {}
    for model in models:
        for task, scores in model["metrics"].items():
            if task not in primary and scores:
                metric = next(iter(scores))
                primary[task] = {"metric": metric, "higher_is_better": higher_is_better(metric)}
    return primary


def compare(value: float, baseline: float, higher: bool, tolerance: float) -> dict[str, Any]:
    """How far ``value`` regressed from ``baseline`` in the metric's direction (rules in the module doc)."""
    if higher:
        rule, regression = "absolute drop", baseline - value
    else:
        rule = "relative increase"
        regression = (value / baseline - 1.0) if baseline > 0 else (0.0 if value <= baseline else float("inf"))
    passed = regression <= tolerance + 1e-12  # NaN compares False: a NaN score fails the gate
    return {"rule": rule, "regression": regression, "passed": bool(passed)}


Tolerance = float | dict[str, float]
"""``eval.tolerance``: one number for every task, or ``{task: number}`` (tasks have their own scales:
an accuracy in points, a perplexity as a ratio); a task missing from the mapping uses ``default``."""


def tolerance_for(tolerance: Tolerance, task: str) -> float:
    """The tolerance that applies to ``task``."""
    if isinstance(tolerance, dict):
        return float(tolerance.get(task, tolerance.get("default", 0.0)))
    return float(tolerance)


def check_regressions(
    models: list[dict[str, Any]], primary: dict[str, dict[str, Any]], tolerance: Tolerance
) -> list[dict[str, Any]]:
    """One check per (model with a baseline, task both report)."""
    by_label = {m["label"]: m for m in models}
    checks = []
    for model in models:
        base = by_label.get(model.get("baseline") or "")
        if base is None:
            continue
        for task, spec in primary.items():
            metric = spec["metric"]
            value = model["metrics"].get(task, {}).get(metric)
            ref = base["metrics"].get(task, {}).get(metric)
            if value is None or ref is None:
                continue
            allowed = tolerance_for(tolerance, task)
            result = compare(float(value), float(ref), bool(spec["higher_is_better"]), allowed)
            checks.append(
                {
                    "model": model["label"],
                    "baseline": base["label"],
                    "task": task,
                    "metric": metric,
                    "value": float(value),
                    "baseline_value": float(ref),
                    "tolerance": allowed,
                    **result,
                }
            )
    return checks


def build_results(
    models: list[dict[str, Any]], primary: dict[str, dict[str, Any]], tolerance: Tolerance, **extra: Any
) -> dict[str, Any]:
    """The whole results document, gate included."""
    labels = [m["label"] for m in models]
    if len(set(labels)) != len(labels):
        raise ValueError(f"model labels must be unique: {labels}")
    checks = check_regressions(models, primary, tolerance)
    return {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        **extra,
        "models": models,
        "primary": primary,
        "tolerance": tolerance,
        "tolerance_rule": TOLERANCE_RULE,
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
    }


def write_results(output_dir: str | Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` atomically (a reader never sees half a file)."""
    path = Path(output_dir) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def gate_failure(results: dict[str, Any], where: str | Path) -> UserError | None:
    """The error that fails the stage when a model regressed beyond the tolerance, else None."""
    failed = [c for c in results["checks"] if not c["passed"]]
    if not failed:
        return None
    worst = "; ".join(
        f"{c['model']} vs {c['baseline']} {c['task']} {c['metric']} {describe_change(c)} (tolerance {c['tolerance']})"
        for c in failed
    )
    return UserError(
        f"eval gate failed: {worst}",
        hint=f"see {where}; fix the regressing stage or raise eval.tolerance",
    )


def metadata_view(results: dict[str, Any]) -> dict[str, Any]:
    """What the artifact's metadata records: the gate verdict and each model's primary scores."""
    return {
        "format": RESULTS_FORMAT,
        "passed": results["passed"],
        "tolerance": results["tolerance"],
        "scores": {m["label"]: primary_scores(m, results["primary"]) for m in results["models"]},
    }


# ------------------------------------------------------------------------------ NeMo-Evaluator input


def _scores(section: dict[str, Any]) -> dict[str, float]:
    """``{metric[/score]: value}`` from one task's ``metrics: {m: {scores: {s: {value}}}}``."""
    out: dict[str, float] = {}
    for metric, mdata in (section.get("metrics") or {}).items():
        for score, sdata in ((mdata or {}).get("scores") or {}).items():
            value = sdata.get("value") if isinstance(sdata, dict) else sdata
            if isinstance(value, int | float):
                out[metric if score == metric else f"{metric}/{score}"] = float(value)
    return out


def parse_results_yml(path: str | Path) -> dict[str, dict[str, float]]:
    """One NeMo-Evaluator ``results.yml`` -> ``{task: {metric: value}}`` (tasks and groups)."""
    import yaml

    doc = yaml.safe_load(Path(path).read_text()) or {}
    data = doc.get("results", doc) if isinstance(doc, dict) else {}
    out: dict[str, dict[str, float]] = {}
    for kind in ("tasks", "groups"):
        for name, section in (data.get(kind) or {}).items():
            scores = _scores(section or {})
            if scores:
                out[name] = scores
    return out


def collect_results(root: str | Path) -> dict[str, dict[str, float]]:
    """Merge every ``results.yml`` below ``root``."""
    merged: dict[str, dict[str, float]] = {}
    for path in sorted(Path(root).rglob("results.yml")):
        for task, scores in parse_results_yml(path).items():
            merged.setdefault(task, {}).update(scores)
    return merged


# ------------------------------------------------------------------------------------------ reading


def read_results(path: str | Path) -> dict[str, Any]:
    """``results.json`` of an eval-results directory (or the file itself), checked to be this format."""
    path = Path(path)
    file = path / RESULTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"no {RESULTS_FILE} at {path}", hint="pass an eval-results artifact made by the eval stage")
    try:
        results = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{file} is not valid JSON: {exc}") from None
    if not isinstance(results, dict) or results.get("format") != RESULTS_FORMAT:
        raise UserError(
            f"{file} is not a {RESULTS_FORMAT} file", hint="it was written by an older version: re-run the eval stage"
        )
    return results


def primary_scores(model: dict[str, Any], primary: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """``{task: primary metric value}`` of one model (None where it has no score)."""
    return {task: model["metrics"].get(task, {}).get(spec["metric"]) for task, spec in primary.items()}


def scripts_view(results: dict[str, Any]) -> dict[str, Any]:
    """``eval --show NAME --format json``: ``{"models": [{"name", "stage", "metrics": {task: value}}]}``."""
    return {
        "models": [
            {"name": m["name"], "stage": m["stage"], "metrics": primary_scores(m, results["primary"])}
            for m in results["models"]
        ],
        "passed": results["passed"],
    }


def describe_change(check: dict[str, Any]) -> str:
    """``-0.1100`` (absolute) or ``+166.67%`` (relative), as a person reads the regression."""
    if check["rule"] == "absolute drop":
        return f"{0.0 - check['regression']:+.4f}".replace("-0.0000", "+0.0000")
    return f"{check['regression'] * 100:+.2f}%".replace("-0.00%", "+0.00%")


def _tolerance_text(tolerance: Tolerance) -> str:
    if isinstance(tolerance, dict):
        return ", ".join(f"{task} {value}" for task, value in tolerance.items())
    return str(tolerance)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value != value:  # NaN
        return "nan"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.4g}"


def table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Task x model table; a model with a baseline shows its change and FAIL beyond the tolerance."""
    models = results["models"]
    checks = {(c["model"], c["task"]): c for c in results["checks"]}
    header = ["task (metric)", *(m["label"] for m in models)]
    rows = []
    for task, spec in results["primary"].items():
        arrow = "higher better" if spec["higher_is_better"] else "lower better"
        row = [f"{task} ({spec['metric']}, {arrow})"]
        for model in models:
            cell = _fmt(model["metrics"].get(task, {}).get(spec["metric"]))
            check = checks.get((model["label"], task))
            if check:
                cell += f" ({describe_change(check)}{'' if check['passed'] else ' FAIL'})"
            row.append(cell)
        rows.append(row)
    return header, rows


def _lines(rows: Iterable[list[str]]) -> list[str]:
    rows = list(rows)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def render_table(results: dict[str, Any]) -> str:
    """Plain text for ``eval --show``: the table, what each column is, the rule and the verdict."""
    header, rows = table_rows(results)
    lines = _lines([header, *rows])
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    for model in results["models"]:
        made_from = f", compared with {model['baseline']}" if model.get("baseline") else ""
        lines.append(f"{model['label']}: {model['name']} (stage {model['stage']}{made_from})")
    lines.append(f"tolerance {_tolerance_text(results['tolerance'])}: {results['tolerance_rule']}")
    lines.append(f"gate: {'PASSED' if results['passed'] else 'FAILED'}")
    return "\n".join(lines)


def render_markdown(results: dict[str, Any], title: str = "Eval results") -> str:
    """The same table as Markdown (``results.md`` next to ``results.json``)."""
    header, rows = table_rows(results)
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", *(f"- {m['label']}: {m['name']} (stage {m['stage']})" for m in results["models"]), ""]
    lines += [f"Tolerance {_tolerance_text(results['tolerance'])}: {results['tolerance_rule']}", ""]
    lines += [f"Gate: {'PASSED' if results['passed'] else 'FAILED'}", ""]
    return "\n".join(lines)


def show_results(path: str | Path, fmt: str = "table") -> str:
    """Render the eval-results directory ``path`` for a person (``table``) or a script (``json``)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"eval results directory {path} does not exist")
    results = read_results(path)
    if fmt == "json":
        return json.dumps(scripts_view(results), indent=2)
    return render_table(results)
