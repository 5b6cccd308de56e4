"""Read and render eval results: NeMo-Evaluator's ``results.yml`` and this project's summaries.

``show_results(path)`` is what ``nemotron super3 eval --show RESULT`` prints. It dispatches on what
the eval-results directory holds: a ``summary.json`` written by the megatron eval stage, raw
evaluator ``results.yml`` files, or the tiny backend's own format (rendered by
``super3.tiny.eval.show_results`` when that module offers it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from nemotron.errors import UserError

SUMMARY_FILE = "summary.json"
SUMMARY_FORMAT = "nemo-evaluator"


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


def primary_score(scores: dict[str, float]) -> float | None:
    """The score a task is judged by: the first metric (evaluator tasks report their main one first)."""
    return next(iter(scores.values()), None)


def render_summary(summary: dict[str, Any]) -> str:
    """A plain-text table: one row per task, one column per evaluated model."""
    models: dict[str, dict[str, dict[str, float]]] = summary.get("models") or {}
    labels = list(models)
    tasks = sorted({t for per in models.values() for t in per})
    if not tasks:
        return "no scores found"
    rows = [["task", *labels]]
    for task in tasks:
        row = [task]
        for label in labels:
            value = primary_score(models[label].get(task, {}))
            row.append("-" if value is None else f"{value:.4f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for check in summary.get("checks") or []:
        lines.append(
            f"{check['model']} vs {check['baseline']} on {check['task']}: drop {check['drop']:+.4f} "
            f"(tolerance {check['tolerance']}) {'ok' if check['ok'] else 'FAILED'}"
        )
    return "\n".join(lines)


def _tiny_show(path: Path) -> str | None:
    from nemotron.paths import RECIPES_DIR

    if str(RECIPES_DIR) not in sys.path:
        sys.path.insert(0, str(RECIPES_DIR))
    try:
        from super3.tiny import eval as tiny_eval
    except ImportError:
        return None
    show = getattr(tiny_eval, "show_results", None)
    return show(path) if callable(show) else None


def show_results(path: str | Path) -> str:
    """Render the eval-results directory ``path`` for a person."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"eval results directory {path} does not exist")
    summary_file = path / SUMMARY_FILE
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        if summary.get("format") == SUMMARY_FORMAT:
            return render_summary(summary)
    raw = collect_results(path)
    if raw:
        return render_summary({"models": {path.name: raw}})
    text = _tiny_show(path)
    if text is not None:
        return text
    raise UserError(f"{path} holds no eval results this version can read", hint="expected summary.json or results.yml")
