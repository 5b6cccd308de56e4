"""Bring your own model, for real on the CPU: an HF checkpoint registered with ``artifacts add`` is
what ``super3 sft -c tiny`` trains from, and lineage starts at it.

The proof that the weights were loaded: the SFT stage's masked loss before training (measured on
data prep's held-out split) equals the loss of the registered checkpoint computed here independently
from the same files, and differs from the loss of the random init the stage would otherwise use.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from nemotron.artifacts.registry import Registry
from tests.pipeline.tiny_checks import nemotron

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "recipes"))
ASSETS = REPO / "recipes" / "super3" / "assets" / "tiny"


def _tiny_model_section() -> dict:
    return yaml.safe_load((REPO / "configs" / "super3" / "sft" / "tiny.yaml").read_text())["model"]


def make_hf_checkpoint(directory: Path, seed: int) -> Path:
    """A tiny Super-shaped NemotronH saved with ``save_pretrained`` (safetensors + tokenizer)."""
    from super3.tiny import model as tiny_model

    tokenizer = tiny_model.load_tokenizer(ASSETS / "tokenizer.json")
    model = tiny_model.new_model(_tiny_model_section(), seed=seed, tokenizer=tokenizer)
    return tiny_model.save_model(model, tokenizer, directory)


def heldout_loss(model_dir: Path | None, data_dir: Path, seed: int = 0) -> float:
    """Masked loss on the valid split (the SFT stage's held-out set) of the model at ``model_dir``,
    or of a fresh random init with ``seed`` when ``model_dir`` is None."""
    from super3.tiny import data as tiny_data
    from super3.tiny import model as tiny_model
    from super3.tiny import sft as tiny_sft
    from super3.tiny import training

    if model_dir is None:
        tokenizer = tiny_model.load_tokenizer(ASSETS / "tokenizer.json")
        model = tiny_model.new_model(_tiny_model_section(), seed=seed, tokenizer=tokenizer)
    else:
        model, tokenizer = tiny_model.load_model(model_dir)
    # the one reader of the packed format, as the SFT stage calls it (MB zeroes the loss on EOS inputs)
    valid = tiny_data.read_sft_sequences(data_dir, max_length=256, split="valid", eos_id=tokenizer.eos_token_id)
    assert valid, "tiny data prep sft must write a valid split"
    held = valid[: tiny_sft.HELDOUT_SEQUENCES]
    return training.evaluate(model, tiny_data.chunk_by_length(held, tokenizer.pad_token_id))


@pytest.fixture(scope="module")
def byo_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("byo")
    home = tmp / "home"
    checkpoint = make_hf_checkpoint(tmp / "my-model", seed=7)
    added = nemotron(["artifacts", "add", str(checkpoint), "--name", "byo-base", "--kind", "model"], home)
    assert added.returncode == 0, added.stderr
    prep = nemotron(["super3", "data", "prep", "sft", "-c", "tiny"], home, timeout=600)
    assert prep.returncode == 0, prep.stdout[-3000:] + prep.stderr[-3000:]
    sft = nemotron(
        ["super3", "sft", "-c", "tiny", "run.model=byo-base", "train.train_iters=2", "train.eval_iters=0"],
        home,
        timeout=900,
    )
    assert sft.returncode == 0, sft.stdout[-3000:] + sft.stderr[-3000:]
    return home, checkpoint, Registry(home / "artifacts")


def test_add_records_the_format_and_a_reference_digest(byo_run):
    _, checkpoint, registry = byo_run
    art = registry.get("byo-base")
    assert art.kind == "model" and art.path == str(checkpoint.resolve())
    assert art.metadata["format"] == "hf" and art.metadata["hf"]["architectures"] == ["NemotronHForCausalLM"]
    assert art.digest.startswith("sha256r:") and art.run.stage == "artifacts.add" and art.inputs == []


def test_sft_trains_from_the_added_weights_not_a_random_init(byo_run):
    _, checkpoint, registry = byo_run
    sft = registry.get("tiny-sft-model")
    assert sft.input_slots["model"] == "byo-base:v1"
    data_dir = Path(registry.get("tiny-sft-data").path)
    loaded = heldout_loss(checkpoint, data_dir)
    random_init = heldout_loss(None, data_dir, seed=1234)  # what the stage would start from without weights
    start = sft.metadata["masked_loss_before"]
    assert start == pytest.approx(loaded, abs=1e-3), (start, loaded)
    assert abs(start - random_init) > 0.01, (start, random_init)


def test_lineage_has_the_added_model_at_its_root(byo_run):
    home, _, registry = byo_run
    sft = registry.get("tiny-sft-model")
    done = nemotron(["lineage", "tiny-sft-model", "--format", "json"], home)
    assert done.returncode == 0, done.stderr
    graph = json.loads(done.stdout)
    edges = {(e["from"], e["to"]) for e in graph["edges"]}
    touching = {pair for pair in edges if "byo-base:v1" in pair}
    assert touching and all(set(pair) == {"byo-base:v1", sft.ref} for pair in touching), edges  # a root: no inputs
    tree = nemotron(["lineage", "tiny-sft-model"], home).stdout
    assert "byo-base:v1" in tree and "artifacts.add" in tree, tree


def test_a_changed_checkpoint_is_refused_at_submit(byo_run, tmp_path):
    home, checkpoint, _ = byo_run
    config = checkpoint / "config.json"
    original = config.read_text()
    try:
        config.write_text(original.replace("{", '{"edited": true, ', 1))
        done = nemotron(["super3", "sft", "-c", "tiny", "run.model=byo-base"], home)
        assert done.returncode == 2
        assert "changed since they were added" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    finally:
        config.write_text(original)
