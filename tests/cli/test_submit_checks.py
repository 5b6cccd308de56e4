"""Bad data-prep inputs and outputs are caught at submit time (dry-run too): one line, exit 2, no job files.

The node repeats these checks; this is the early answer on the login node, before a job is queued.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import run_cli

LONG = "a" * 130

CASES = [
    # (stage words, override, words the one-line message must contain)
    (["data", "prep", "rl"], "data.inputs=[nope.jsonl]", ["data.inputs[0]: no input files match 'nope.jsonl'"]),
    (["data", "prep", "rl"], "data.inputs=[empty/*.jsonl]", ["no input files match 'empty/*.jsonl'"]),
    (["data", "prep", "rl"], "data.inputs=[notes.txt]", ["unsupported input file"]),
    (["data", "prep", "rl"], "data.inputs=[garbage.jsonl]", ["garbage.jsonl are not JSON objects"]),
    (["data", "prep", "rl"], "data.inputs=[broken.jsonl.gz]", ["cannot read", "broken.jsonl.gz"]),
    (["data", "prep", "rl"], "data.inputs=[questions.jsonl]", ["no 'prompt' field", "question", "data.prompt_field="]),
    (["data", "prep", "pretrain"], "data.inputs=[questions.jsonl]", ["no 'text' field", "data.text_field="]),
    (["data", "prep", "sft"], "tokenizer.path=questions.jsonl", ["is not a Hugging Face tokenizer.json"]),
    (["data", "prep", "sft"], "tokenizer.path=nowhere/tok.json", ["tokenizer file not found"]),
    (["data", "prep", "rl"], f"output.name={LONG}", ["130 characters long", "registry's 128"]),
    (["data", "prep", "rl"], "output_dir=afile", ["output_dir afile is a file"]),
    (["data", "prep", "rl"], "output_dir=afile/sub", ["afile is a file"]),
]


@pytest.fixture
def inputs(home: Path) -> Path:
    """Bad inputs in the cwd (the home fixture's tmp dir)."""
    cwd = home.parent
    (cwd / "empty").mkdir()
    (cwd / "notes.txt").write_text("hello\n")
    (cwd / "garbage.jsonl").write_text("not json\nstill not json\n")
    (cwd / "broken.jsonl.gz").write_bytes(b"this is not gzip data at all")
    (cwd / "questions.jsonl").write_text('{"question": "1+1", "answer": "2"}\n' * 3)
    (cwd / "afile").write_text("x")
    return cwd


@pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "submit"])
@pytest.mark.parametrize(("stage", "override", "needles"), CASES, ids=[c[1][:40] for c in CASES])
def test_bad_data_prep_input_is_one_line_exit_2_before_submit(
    inputs: Path, home: Path, capsys: pytest.CaptureFixture[str], stage, override, needles, dry
) -> None:
    code, out, err = run_cli(["super3", *stage, "-c", "tiny", *(["-d"] if dry else []), override], capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out + err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not (home / "jobs").exists()


def test_pipe_dry_run_checks_the_data_prep_inputs_of_stages_that_run(
    inputs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["super3", "pipe", "-c", "tiny", "-d", "data_prep.rl.data.inputs=[nope.jsonl]"], capsys)
    assert code == 2, (out, err)
    assert err.strip().splitlines() == [
        "error: data_prep.rl: data.inputs[0]: no input files match 'nope.jsonl' — give an existing file, "
        "directory or glob (relative paths: cwd, then the repository root)"
    ]
