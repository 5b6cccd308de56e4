"""GPU-hours per pipe step: training from the calculator over the iterations a step really runs."""

from __future__ import annotations

import pytest

from nemotron.config.loader import load_stage_config
from nemotron.launch.estimates import pipe_gpu_hours
from nemotron.pipeline.pipe import load_pipe, wire


def test_phase2_counts_only_the_iterations_after_phase1_and_other_steps_are_bounded():
    _, steps = load_pipe("default")
    configs = {s.id: load_stage_config(s.stage, s.config).data for s in steps}
    hours = pipe_gpu_hours(steps, configs, wire(steps))
    p1, p2 = hours["pretrain.phase1"], hours["pretrain.phase2"]
    assert p1.estimated and p2.estimated
    # phase 1 runs 794,723 of the 993,404 iterations, phase 2 the remaining 198,681: 80% / 20%
    assert p1.hours / (p1.hours + p2.hours) == pytest.approx(794723 / 993404, rel=1e-3)
    assert hours["data_prep.sft"] is None  # CPU nodes
    rl = configs["rl.rlvr"]["resources"]
    assert not hours["rl.rlvr"].estimated and hours["rl.rlvr"].hours > 0
    assert rl["nodes"] * rl["gpus_per_node"] > 0
