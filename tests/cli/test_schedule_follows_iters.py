"""LR schedule lengths follow train.train_iters unless a layer at or above it sets them; the plan warns
when warmup covers the whole run."""

from __future__ import annotations

from nemotron.config.loader import load_stage_config
from nemotron.launch.plan import schedule_warnings
from nemotron.pipeline.stages import get_stage

PRETRAIN = get_stage("pretrain")


def test_defaults_keep_the_published_schedule() -> None:
    opt = load_stage_config(PRETRAIN).data["optimizer"]
    assert (opt["decay_iters"], opt["wsd_decay_iters"]) == (992411, 198682)


def test_tiny_config_decays_over_its_own_iterations() -> None:
    resolved = load_stage_config(PRETRAIN, "tiny")
    assert resolved.data["optimizer"]["decay_iters"] is None and resolved.data["optimizer"]["wsd_decay_iters"] is None
    assert ("optimizer.decay_iters", 992411, None, "follows train.train_iters (config:tiny)") in resolved.diff()


def test_cli_iterations_drop_inherited_lengths_but_explicit_ones_stay() -> None:
    opt = load_stage_config(PRETRAIN, cli_overrides={"train.train_iters": 100}).data["optimizer"]
    assert opt["decay_iters"] is None
    both = {"train.train_iters": 100, "optimizer.decay_iters": 80}
    assert load_stage_config(PRETRAIN, cli_overrides=both).data["optimizer"]["decay_iters"] == 80


def test_warmup_covering_the_run_is_a_warning() -> None:
    data = load_stage_config(PRETRAIN, cli_overrides={"train.train_iters": 100}).data
    (warning,) = schedule_warnings(data)
    assert "warmup_iters=7949 >= train.train_iters=100" in warning
    assert schedule_warnings(load_stage_config(PRETRAIN, "tiny").data) == []
