"""`nemotron artifacts ls|show|sync` and `nemotron lineage` on a real registry, via typer's CliRunner."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import typer
from typer.testing import CliRunner

from nemotron.artifacts.lineage import from_json
from nemotron.cli.artifacts import app as artifacts_app
from nemotron.cli.lineage import lineage
from nemotron.errors import UserError

runner = CliRunner()


def _lineage_app() -> typer.Typer:
    app = typer.Typer()
    app.command("lineage")(lineage)

    @app.command("noop")
    def noop() -> None:  # a second command keeps `lineage` a subcommand, as in cli/main.py
        pass

    return app


def _ok(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_ls_and_show(chain, registry):
    root = ["--root", str(registry.root)]
    out = _ok(runner.invoke(artifacts_app, ["ls", "--wide", *root], env={"COLUMNS": "250"}))
    for name in ("pretrain-data", "sft-model", "rl-rlvr-model", "eval-results"):
        assert name in out
    assert "data_prep.sft" in out and "j5" in out
    models = _ok(runner.invoke(artifacts_app, ["ls", "model", *root, "--json"]))
    assert {a["name"] for a in json.loads(models)} == {"pretrain-model", "sft-model", "rl-rlvr-model"}
    shown = _ok(runner.invoke(artifacts_app, ["show", "sft-model:latest", *root], env={"COLUMNS": "250"}))
    assert "sft-model:v1" in shown and "model=pretrain-model:v1" in shown and "data=sft-data:v1" in shown
    assert "rl-rlvr-model:v1" in shown  # consumers
    assert chain["sft"].digest in shown and "hash-j5" in shown
    data = json.loads(_ok(runner.invoke(artifacts_app, ["show", "sft-data", *root, "--json"])))
    assert data["consumers"] == ["quantized-model:v1", "sft-model:v1"] and data["wandb"] is None


def test_errors_are_user_errors(registry, chain):
    result = runner.invoke(artifacts_app, ["show", "rl-swe1-model", "--root", str(registry.root)])
    assert isinstance(result.exception, UserError) and "rl.swe1" in result.exception.hint
    result = runner.invoke(artifacts_app, ["ls", "weights", "--root", str(registry.root)])
    assert isinstance(result.exception, UserError) and "kinds:" in result.exception.hint
    result = runner.invoke(_lineage_app(), ["lineage", "sft-model", "--format", "png", "--root", str(registry.root)])
    assert isinstance(result.exception, UserError)


def test_root_defaults_to_env(chain, registry, tmp_path):
    out = _ok(
        runner.invoke(artifacts_app, ["ls"], env={"NEMOTRON_ARTIFACTS_ROOT": str(registry.root), "COLUMNS": "250"})
    )
    assert "sft-model" in out
    empty = _ok(runner.invoke(artifacts_app, ["ls"], env={"NEMOTRON_ARTIFACTS_ROOT": str(tmp_path / "none")}))
    assert "no artifacts" in empty


def test_lineage_tree_and_exports(chain, registry):
    app = _lineage_app()
    root = ["--root", str(registry.root)]
    tree = _ok(runner.invoke(app, ["lineage", "eval-results", "--long", *root], env={"COLUMNS": "250"}))
    assert tree.splitlines()[0].startswith("eval-results:v1 @latest (eval-results) ← eval [j8] config hash-j8")
    assert "pretrain-data:v1" in tree and "← data_prep.pretrain [j1]" in tree
    short = _ok(runner.invoke(app, ["lineage", "eval-results", *root], env={"COLUMNS": "80"}))
    assert short.splitlines()[0] == "eval-results:v1 ← eval" and "[j1]" not in short
    down = _ok(runner.invoke(app, ["lineage", "pretrain-data:v1", "--down", *root], env={"COLUMNS": "250"}))
    assert down.splitlines()[0].startswith("pretrain-data:v1") and "eval-results:v1" in down
    exported = _ok(runner.invoke(app, ["lineage", "quantized-model", "--format", "json", *root]))
    graph = from_json(exported)
    assert graph.root == "quantized-model:v1" and ("sft-data:v1", "quantized-model:v1") in graph.edges
    mermaid = _ok(runner.invoke(app, ["lineage", "quantized-model", "-f", "mermaid", *root]))
    assert mermaid.startswith("flowchart LR\n")
    dot = _ok(runner.invoke(app, ["lineage", "quantized-model", "-f", "dot", *root]))
    assert dot.startswith("digraph lineage {") and '"sft-data:v1" -> "quantized-model:v1";' in dot


def test_sync_dry_run_lists_the_plan(chain, registry):
    out = _ok(runner.invoke(artifacts_app, ["sync", "--dry-run", "--root", str(registry.root)]))
    assert "log     pretrain-data:v1" in out and "use     sft-model:v1  sft-data:v1" in out
    assert "17 step(s); nothing done" in out  # 8 logs + 9 edges
    result = runner.invoke(artifacts_app, ["sync", "--root", str(registry.root)], env={"WANDB_PROJECT": ""})
    assert isinstance(result.exception, UserError) and "--project" in result.exception.hint


def test_cli_modules_import_nothing_heavy():
    code = (
        "import sys; import nemotron.cli.artifacts, nemotron.cli.lineage, nemotron.artifacts;"
        "heavy = [m for m in ('wandb', 'torch', 'numpy', 'pyarrow', 'pydantic', 'nemo_run', 'yaml') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_through_the_real_entry_point(chain, registry):
    import nemotron.cli.jobs  # noqa: F401  (a broken import must fail here, not skip)

    env_root = {"NEMOTRON_ARTIFACTS_ROOT": str(registry.root), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    cmd = [sys.executable, "-c", "from nemotron.cli.main import main; main()"]
    ok = subprocess.run([*cmd, "lineage", "sft-model"], capture_output=True, text=True, env=env_root)
    assert ok.returncode == 0 and ok.stdout.startswith("sft-model:v1"), ok.stderr
    bad = subprocess.run([*cmd, "artifacts", "show", "rl-rlhf-model"], capture_output=True, text=True, env=env_root)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "rl.rlhf" in bad.stderr


def test_sync_reads_the_wandb_section_of_env_toml(chain, registry, tmp_path, monkeypatch):
    """With [wandb] project set in env.toml, sync goes for W&B (here unreachable) instead of asking for --project."""
    env = tmp_path / "env.toml"
    env.write_text('[wandb]\nproject = "from-env-toml"\nbase_url = "http://127.0.0.1:9"\nhttp_timeout = 3\n')
    monkeypatch.setenv("NEMOTRON_ENV_FILE", str(env))
    for var in ("WANDB_PROJECT", "WANDB_BASE_URL", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    from nemotron.cli.artifacts import sync_settings

    assert sync_settings(None, None)["project"] == "from-env-toml"
    assert sync_settings("flag", None)["project"] == "flag"
    # in a child process: wandb keeps process-wide state that would leak into the other W&B tests
    env = {**os.environ, "NEMOTRON_ENV_FILE": str(env), "WANDB_API_KEY": "0" * 40, "WANDB_DIR": str(tmp_path)}
    for var in ("WANDB_PROJECT", "WANDB_BASE_URL", "WANDB_MODE", "WANDB_SERVICE"):
        env.pop(var, None)  # WANDB_SERVICE: another test's W&B service in this process; the child starts its own
    done = subprocess.run(
        [sys.executable, "-m", "nemotron.cli.main", "artifacts", "sync", "--root", str(registry.root)],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot reach W&B" in done.stderr and "no W&B project" not in done.stderr
