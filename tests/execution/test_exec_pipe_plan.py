"""pipe planning against a real artifact registry: wiring, references, skip/resume, --from/--only/--force."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nemotron.artifacts import Registry
from nemotron.errors import UserError
from nemotron.pipeline.launch_pipe import split_overrides
from nemotron.pipeline.pipe import RUN, SKIP, UNSELECTED, PipeStep, StageInfo, load_pipe, plan_pipe, wire
from nemotron.pipeline.stages import BY_NAME, STAGES

TINY = [
    "data_prep.pretrain",
    "data_prep.sft",
    "data_prep.rl",
    "pretrain",
    "sft",
    "rl.rlvr",
    "quantize",
    "eval",
]


def steps(names: list[str] = TINY) -> list[PipeStep]:
    return [PipeStep(BY_NAME[n], "tiny") for n in names]


class Resolver:
    """Stands in for config loading: output name + a hash that changes with per-stage 'overrides'."""

    def __init__(self, changed: dict[str, str] | None = None) -> None:
        self.changed = changed or {}
        self.calls: list[str] = []

    def __call__(self, step: PipeStep) -> StageInfo:
        name = step.stage.name
        self.calls.append(name)
        digest = hashlib.sha256(f"{name}:{self.changed.get(name, '')}".encode()).hexdigest()
        return StageInfo(output_name=f"t-{name.replace('.', '-')}", config_hash=digest)


def execute(plan, registry: Registry, tmp_path: Path) -> None:
    """Do what the nodes would: each running stage resolves its inputs and publishes its output."""
    for stage in plan.to_run:
        out = tmp_path / "outputs" / plan.experiment_id / stage.name
        out.mkdir(parents=True)
        (out / "data.txt").write_text(f"{stage.name} of {plan.experiment_id}")
        inputs = {slot: registry.get(ref) for slot, ref in stage.inputs.items()}
        registry.publish(
            stage.info.output_name,
            stage.step.stage.output.kind,
            out,
            inputs=inputs,
            run={"stage": stage.name, "config_hash": stage.info.config_hash, "id": f"{plan.experiment_id}--x"},
            aliases=["latest", plan.publish_alias],
        )


def actions(plan) -> dict[str, str]:
    return {s.name: s.action for s in plan.stages}


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "artifacts")


def test_pipe_configs_list_the_stages() -> None:
    assert [s.stage.name for s in load_pipe("tiny")[1]] == TINY
    name, default = load_pipe("default")
    conversions = {"model.import", "model.export"}  # inserted by the pipe where a format needs them
    assert name == "default" and {s.stage.name for s in default} == {s.name for s in STAGES} - conversions
    phases = [s for s in default if s.stage.name == "pretrain"]
    assert [s.config for s in phases] == ["phase1", "phase2", "long_context", "long_context_mixed"]
    # each RL pass reads its own blend from its own `data prep rl -c <pass>` step
    rl_data = {s.id: s.config for s in default if s.stage.name == "data_prep.rl"}
    assert list(rl_data.values()) == ["rlvr1", "rlvr2", "rlvr3", "swe1", "swe2", "rlhf"]
    assert wire(default)["rl.swe1"] == {"model": "rl.rlvr3", "data": "data_prep.rl.swe1"}
    assert {s.config for s in default if not s.stage.name.startswith(("pretrain", "data_prep."))} == {"default"}
    with pytest.raises(UserError, match="no pipe config"):
        load_pipe("nope")


def test_each_input_is_fed_by_the_nearest_earlier_producer() -> None:
    wiring = wire([BY_NAME[n] for n in TINY])
    assert wiring["data_prep.pretrain"] == {}
    assert wiring["pretrain"] == {"data": "data_prep.pretrain"}  # the optional model input stays unwired
    assert wiring["sft"] == {"model": "pretrain", "data": "data_prep.sft"}
    assert wiring["rl.rlvr"] == {"model": "sft", "data": "data_prep.rl"}
    assert wiring["quantize"] == {"model": "rl.rlvr", "calib": "data_prep.sft"}
    # the comparison ports (earlier stages' models) are external: wired only explicitly
    assert wiring["eval"] == {"model": "rl.rlvr", "quantized": "quantize"}
    full = wire(list(STAGES))
    assert full["rl.rlvr2"]["model"] == "rl.rlvr" and full["rl.rlvr3"]["model"] == "rl.rlvr2"
    assert full["rl.swe1"]["model"] == "rl.rlvr3"
    assert full["rl.swe2"]["model"] == "rl.swe1" and full["rl.rlhf"]["model"] == "rl.swe2"
    assert full["eval"]["model"] == "rl.rlhf"


def test_first_run_runs_everything_with_experiment_aliases(registry: Registry) -> None:
    prepared = []

    def prepare(step, refs, deps, alias):
        prepared.append((step.stage.name, refs, deps, alias))
        from nemotron.execution.job import PreparedJob

        return PreparedJob(
            stage=step.stage,
            job_id=f"E--{step.stage.name}",
            experiment_id="E",
            job_dir=Path("/x"),
            train_yaml=Path("/x/train.yaml"),
            job_yaml=Path("/x/job.yaml"),
            train_cfg={},
            depends_on=deps,
        )

    plan = plan_pipe(steps(), Resolver(), registry, experiment_id="E", prepare=prepare)
    assert set(actions(plan).values()) == {RUN}
    sft = next(s for s in plan.stages if s.name == "sft")
    assert sft.inputs == {"model": "t-pretrain:exp-E", "data": "t-data_prep-sft:exp-E"}
    assert sft.depends_on == ["pretrain", "data_prep.sft"]
    by_stage = {p[0]: p for p in prepared}
    assert by_stage["sft"][2] == ("E--pretrain", "E--data_prep.sft")
    assert by_stage["data_prep.rl"][2] == ()
    assert by_stage["eval"][1] == {"model": "t-rl.rlvr:exp-E".replace(".", "-"), "quantized": "t-quantize:exp-E"}
    assert [j.job_id for j in plan.jobs] == [f"E--{n}" for n in TINY]


def test_tiny_pipe_feeds_every_stage_model_to_eval(registry: Registry) -> None:
    _, tiny = load_pipe("tiny")
    plan = plan_pipe(tiny, Resolver(), registry, experiment_id="E")
    ev = next(s for s in plan.stages if s.name == "eval")
    assert ev.inputs["sft_model"] == "t-sft:exp-E" and ev.inputs["pretrain_model"] == "t-pretrain:exp-E"
    assert {"sft", "pretrain"} <= set(ev.depends_on)
    plain = next(s for s in plan_pipe(steps(), Resolver(), registry, experiment_id="F").stages if s.name == "eval")
    assert "sft_model" not in plain.inputs and "sft" not in plain.depends_on


def test_rerun_skips_everything_that_completed(registry: Registry, tmp_path: Path) -> None:
    first = plan_pipe(steps(), Resolver(), registry, experiment_id="E1")
    execute(first, registry, tmp_path)
    again = plan_pipe(steps(), Resolver(), registry, experiment_id="E2")
    assert set(actions(again).values()) == {SKIP}
    assert again.jobs == [] and [s.name for s in again.skipped] == TINY
    assert all(s.artifact and s.artifact.endswith(":v1") for s in again.stages)


def test_rerun_resumes_from_the_failed_stage(registry: Registry, tmp_path: Path) -> None:
    first = plan_pipe(steps(), Resolver(), registry, experiment_id="E1")
    # sft failed: only the stages before it (and the data preps) published
    first.stages = [s for s in first.stages if s.name in TINY[:4]]
    execute(first, registry, tmp_path)
    again = plan_pipe(steps(), Resolver(), registry, experiment_id="E2")
    assert actions(again) == {n: (SKIP if n in TINY[:4] else RUN) for n in TINY}
    sft = next(s for s in again.stages if s.name == "sft")
    # fed by skipped stages: exact versions, no dependency on jobs of this experiment
    assert sft.inputs == {"model": "t-pretrain:v1", "data": "t-data_prep-sft:v1"} and sft.depends_on == []
    rl = next(s for s in again.stages if s.name == "rl.rlvr")
    assert rl.inputs == {"model": "t-sft:exp-E2", "data": "t-data_prep-rl:v1"} and rl.depends_on == ["sft"]


def test_changed_config_reruns_it_and_everything_downstream(registry: Registry, tmp_path: Path) -> None:
    execute(plan_pipe(steps(), Resolver(), registry, experiment_id="E1"), registry, tmp_path)
    again = plan_pipe(steps(), Resolver({"pretrain": "train_iters=3"}), registry, experiment_id="E2")
    expected = {n: SKIP for n in TINY[:3]} | {n: RUN for n in TINY[3:]}
    assert actions(again) == expected
    assert next(s for s in again.stages if s.name == "quantize").inputs["calib"] == "t-data_prep-sft:v1"


def test_lineage_mismatch_reruns_the_consumer(registry: Registry, tmp_path: Path) -> None:
    """pretrain was re-run (v2, same config): the sft made from v1 is stale for this pipe."""
    execute(plan_pipe(steps(), Resolver(), registry, experiment_id="E1"), registry, tmp_path)
    forced = plan_pipe(steps(), Resolver(), registry, experiment_id="E2", only="pretrain", force=True)
    assert [s.name for s in forced.to_run] == ["pretrain"]
    execute(forced, registry, tmp_path)
    again = plan_pipe(steps(), Resolver(), registry, experiment_id="E3")
    assert actions(again) == {n: (SKIP if n in TINY[:4] else RUN) for n in TINY}
    assert next(s for s in again.stages if s.name == "pretrain").artifact == "t-pretrain:v2"


def test_missing_data_reruns_the_stage(registry: Registry, tmp_path: Path) -> None:
    first = plan_pipe(steps(), Resolver(), registry, experiment_id="E1")
    execute(first, registry, tmp_path)
    (tmp_path / "outputs" / "E1" / "eval" / "data.txt").unlink()
    (tmp_path / "outputs" / "E1" / "eval").rmdir()
    again = plan_pipe(steps(), Resolver(), registry, experiment_id="E2")
    assert [s.name for s in again.to_run] == ["eval"]


def test_from_forces_a_stage_and_the_rest(registry: Registry, tmp_path: Path) -> None:
    execute(plan_pipe(steps(), Resolver(), registry, experiment_id="E1"), registry, tmp_path)
    plan = plan_pipe(steps(), Resolver(), registry, experiment_id="E2", from_="rl rlvr")
    assert actions(plan) == {n: (SKIP if n in TINY[:5] else RUN) for n in TINY}
    assert next(s for s in plan.stages if s.name == "rl.rlvr").reason == "--from rl.rlvr"


def test_only_runs_one_stage_fed_by_existing_outputs(registry: Registry, tmp_path: Path) -> None:
    execute(plan_pipe(steps(), Resolver(), registry, experiment_id="E1"), registry, tmp_path)
    plan = plan_pipe(steps(), Resolver(), registry, experiment_id="E2", only="quantize")
    acts = actions(plan)
    assert acts["quantize"] == RUN and acts["eval"] == UNSELECTED
    assert {n for n, a in acts.items() if a == SKIP} == set(TINY[:6])
    assert next(s for s in plan.stages if s.name == "quantize").inputs == {
        "model": "t-rl-rlvr:v1",
        "calib": "t-data_prep-sft:v1",
    }


def test_only_without_upstream_outputs_is_a_user_error(registry: Registry) -> None:
    with pytest.raises(UserError, match="--only: data_prep.pretrain may not run"):
        plan_pipe(steps(), Resolver(), registry, experiment_id="E", only="pretrain")


def test_force_and_argument_errors(registry: Registry, tmp_path: Path) -> None:
    execute(plan_pipe(steps(), Resolver(), registry, experiment_id="E1"), registry, tmp_path)
    assert set(actions(plan_pipe(steps(), Resolver(), registry, experiment_id="E2", force=True)).values()) == {RUN}
    with pytest.raises(UserError, match="cannot be combined"):
        plan_pipe(steps(), Resolver(), registry, experiment_id="E", from_="sft", only="sft")
    with pytest.raises(UserError, match="not part of this pipe"):
        plan_pipe(steps(TINY[:4]), Resolver(), registry, experiment_id="E", only="sft")
    with pytest.raises(UserError, match="unknown stage"):
        plan_pipe(steps(), Resolver(), registry, experiment_id="E", from_="pretrian")


def test_overrides_are_routed_by_stage_prefix() -> None:
    routed = split_overrides(
        {"pretrain.train.train_iters": 3, "rl.rlvr.grpo.x": 1, "data_prep.sft.data.y": "z", "rl-rlvr.seed": 5},
        steps(),
    )
    assert routed["pretrain"] == {"train.train_iters": 3}
    assert routed["rl.rlvr"] == {"grpo.x": 1, "seed": 5}
    assert routed["data_prep.sft"] == {"data.y": "z"}
    with pytest.raises(UserError, match="does not start with a stage"):
        split_overrides({"train.train_iters": 3}, steps())


def _publish_like_a_node(
    registry: Registry,
    tmp_path: Path,
    stage: str,
    resolver: Resolver,
    inputs: dict,
    job: str,
    content: str | None = None,
):
    """One stage's publish as the node does it, with chosen content (equal content = equal digest)."""
    info = resolver(PipeStep(BY_NAME[stage], "tiny"))
    out = tmp_path / "outputs" / job
    out.mkdir(parents=True)
    (out / "data.txt").write_text(content if content is not None else job)
    return registry.publish(
        info.output_name, BY_NAME[stage].output.kind, out, inputs=inputs,
        run={"stage": stage, "config_hash": info.config_hash, "id": job}, aliases=["latest"],
    )  # fmt: skip


def test_only_follows_the_chains_own_lineage_not_the_newest_variant(registry: Registry, tmp_path: Path) -> None:
    """A variant (sft with other settings) made rl v2 from sft v2; --only eval must use rl v1 (from sft v1)."""
    execute(plan_pipe(steps(), Resolver(), registry, experiment_id="E1"), registry, tmp_path)
    variant = Resolver({"sft": "train_iters=60"})
    execute(plan_pipe(steps(), variant, registry, experiment_id="E2"), registry, tmp_path)
    assert registry.get("t-rl-rlvr:latest").input_slots["model"] == "t-sft:v2"
    plan = plan_pipe(steps(), Resolver(), registry, experiment_id="E3", only="eval")
    by = {s.name: s for s in plan.stages}
    assert by["sft"].artifact == "t-sft:v1"
    assert by["rl.rlvr"].artifact == "t-rl-rlvr:v1"  # not v2, the variant's
    assert by["eval"].inputs == {"model": "t-rl-rlvr:v1", "quantized": "t-quantize:v1"}
    assert "from the same inputs" in by["rl.rlvr"].reason


def test_only_says_which_candidate_when_several_fit(registry: Registry, tmp_path: Path) -> None:
    r = Resolver()
    _publish_like_a_node(registry, tmp_path, "data_prep.rl", r, {}, "J1", "same rows")
    _publish_like_a_node(registry, tmp_path, "data_prep.rl", r, {}, "J2", "same rows")
    plan = plan_pipe(steps(["data_prep.rl", "rl.rlvr"]), r, registry, experiment_id="E", only="rl.rlvr")
    assert plan.stages[0].artifact == "t-data_prep-rl:v2"
    assert "newest of 2 that fit (t-data_prep-rl:v2, t-data_prep-rl:v1)" in plan.stages[0].reason


def test_only_refuses_outputs_from_another_lineage(registry: Registry, tmp_path: Path) -> None:
    r = Resolver()
    data1 = _publish_like_a_node(registry, tmp_path, "data_prep.rl", r, {}, "J1", "rows A")
    _publish_like_a_node(registry, tmp_path, "sft", r, {}, "J2")
    _publish_like_a_node(registry, tmp_path, "rl.rlvr", r, {"model": "t-sft:v1", "data": data1}, "J3")
    _publish_like_a_node(registry, tmp_path, "data_prep.rl", r, {}, "J4", "rows B")  # different data, same config
    with pytest.raises(UserError, match=r"input t-data_prep-rl changed v1 → v2"):
        plan_pipe(steps(["data_prep.rl", "sft", "rl.rlvr", "eval"]), r, registry, experiment_id="E", only="eval")


def test_identical_republish_keeps_downstream_skips_and_a_real_change_says_why(
    registry: Registry, tmp_path: Path
) -> None:
    execute(plan_pipe(steps(), Resolver(), registry, experiment_id="E1"), registry, tmp_path)
    v1 = registry.get("t-data_prep-rl:v1")
    same = (tmp_path / "outputs" / "E1" / "data_prep.rl" / "data.txt").read_text()
    v2 = _publish_like_a_node(registry, tmp_path, "data_prep.rl", Resolver(), {}, "rerun", same)
    assert v2.version == 2 and v2.digest == v1.digest
    again = plan_pipe(steps(), Resolver(), registry, experiment_id="E2")
    assert set(actions(again).values()) == {SKIP}
    assert next(s for s in again.stages if s.name == "data_prep.rl").artifact == "t-data_prep-rl:v2"
    _publish_like_a_node(registry, tmp_path, "data_prep.rl", Resolver(), {}, "changed", "other rows")
    changed = plan_pipe(steps(), Resolver(), registry, experiment_id="E3")
    rl = next(s for s in changed.stages if s.name == "rl.rlvr")
    assert rl.action == RUN and rl.reason.startswith("input t-data_prep-rl changed v1 → v3")
    assert actions(changed)["eval"] == RUN
