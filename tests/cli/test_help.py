"""``--help`` reads well: stages in panels, whole descriptions, stage order, one "Did you mean"."""

from __future__ import annotations

import subprocess
import sys

from nemotron.pipeline.stages import STAGES

ENTRY = "from nemotron.cli.main import main; main()"


def cli(*args: str, width: int = 80) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "COLUMNS": str(width), "NEMOTRON_RICH_HELP": "0", "TYPER_USE_RICH": "0"}
    return subprocess.run([sys.executable, "-c", ENTRY, *args], capture_output=True, text=True, env=env, timeout=60)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_super3_help_groups_stages_in_panels_in_recipe_order() -> None:
    out = cli("super3", "--help").stdout
    panels = [line.rstrip(":") for line in out.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert panels[panels.index("Data") :] == [
        "Data",
        "Checkpoints",
        "Training",
        "Quantization",
        "Evaluation",
        "Pipeline",
        "Configs",
    ]
    assert "Stage order: data prep {pretrain, sft, rl} -> " in flat(out)
    assert "-> pretrain -> sft -> rl {rlvr, " in flat(out)
    assert "rlhf} -> quantize -> eval." in flat(out)
    assert "nemotron super3 config ls" in flat(out)


def test_descriptions_are_never_cut() -> None:
    raw = cli("super3", "--help").stdout + cli("super3", "data", "prep", "--help").stdout
    texts = flat("\n".join(line for line in raw.splitlines() if not line.startswith("Usage:")))
    for stage in STAGES:
        if len(stage.command) == 1:
            assert flat(stage.help) in texts, stage.name
    assert "..." not in texts


def test_unknown_command_suggests_once() -> None:
    done = cli("super3", "pretrian")
    assert done.returncode == 2
    assert done.stderr.count("Did you mean") == 1, done.stderr
