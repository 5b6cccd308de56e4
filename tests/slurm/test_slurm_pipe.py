"""pipe on Slurm: a dependent experiment whose stages publish and consume real artifacts; a failed
stage stops its dependents, the rerun skips what completed and resumes from the failed stage."""

from __future__ import annotations

import hashlib

import pytest
from _jobkit import Captured, make_job, new_id

from nemotron.artifacts import Registry
from nemotron.env.profiles import Profile
from nemotron.execution import states as st
from nemotron.execution.submit import submit
from nemotron.paths import nemotron_home
from nemotron.pipeline.pipe import RUN, SKIP, PipeStep, StageInfo, plan_pipe
from nemotron.pipeline.stages import BY_NAME

pytestmark = pytest.mark.slurm

NAMES = ["data_prep.pretrain", "data_prep.sft", "pretrain", "sft"]

PAYLOAD = """
import pathlib, sys
import yaml
from nemotron.artifacts.node import publish_output, resolve_inputs

cfg = yaml.safe_load(open(sys.argv[sys.argv.index("--config") + 1]))
inputs = resolve_inputs(cfg)
print("inputs", sorted((slot, art.ref) for slot, art in inputs.items()), flush=True)
if pathlib.Path({fail_flag!r}).exists() and cfg["job"]["stage"] == "sft":
    print("sft fails on purpose", flush=True)
    sys.exit(4)
out = pathlib.Path(cfg["job"]["output_dir"])
out.mkdir(parents=True, exist_ok=True)
(out / "result.txt").write_text(cfg["job"]["stage"])
print("published", publish_output(cfg, out, {{"ok": True}}, inputs).ref, flush=True)
"""


def test_pipe_rerun_skips_completed_stages_and_resumes(slurm_profile: Profile) -> None:
    token = new_id("pp")
    fail_flag = nemotron_home() / f"{token}-fail-sft"
    fail_flag.write_text("1")
    registry = Registry(nemotron_home() / "artifacts")
    steps = [PipeStep(BY_NAME[n], "test") for n in NAMES]

    def info(step: PipeStep) -> StageInfo:
        digest = hashlib.sha256(f"{token}:{step.stage.name}".encode()).hexdigest()
        return StageInfo(output_name=f"{token}-{step.stage.name.replace('.', '-')}", config_hash=digest)

    def run_pipe(exp: str):
        def prepare(step, refs, deps, alias):
            meta = info(step)
            return make_job(
                exp,
                step.stage.name,
                PAYLOAD.format(fail_flag=str(fail_flag)),
                stage=step.stage,
                depends_on=deps,
                output_name=meta.output_name,
                run=refs,
                job_extra={"config_hash": meta.config_hash, "publish_alias": alias},
            )

        plan = plan_pipe(steps, info, registry, experiment_id=exp, prepare=prepare)
        if not plan.jobs:
            return plan, None, ""
        out = Captured()
        return plan, submit(plan.jobs, slurm_profile, detach=False, write=out, interval=0.5), out.text

    # 1st run: sft fails; the stages before it publish, each consumer reading exp-<id> aliases
    exp1 = new_id("pipe1")
    plan, result, text = run_pipe(exp1)
    assert [s.action for s in plan.stages] == [RUN] * 4
    assert result.exit_code == 1, text
    states = {j.stage: j.state for j in result.jobs}
    assert states == {
        "data_prep.pretrain": st.SUCCEEDED,
        "data_prep.sft": st.SUCCEEDED,
        "pretrain": st.SUCCEEDED,
        "sft": st.FAILED,
    }
    assert f"('data', '{token}-data_prep-pretrain:v1')" in text  # pretrain resolved the alias to v1
    pretrain = registry.get(f"{token}-pretrain:exp-{exp1}")
    assert pretrain.input_slots == {"data": f"{token}-data_prep-pretrain:v1"}

    # 2nd run: the three completed stages are skipped, sft runs from their pinned outputs
    fail_flag.unlink()
    exp2 = new_id("pipe2")
    plan, result, text = run_pipe(exp2)
    assert [s.action for s in plan.stages] == [SKIP, SKIP, SKIP, RUN]
    assert plan.stages[3].inputs == {"model": f"{token}-pretrain:v1", "data": f"{token}-data_prep-sft:v1"}
    assert result.exit_code == 0, text
    assert [j.stage for j in result.jobs] == ["sft"]
    sft = registry.get(f"{token}-sft:latest")
    assert sft.input_slots == {"model": f"{token}-pretrain:v1", "data": f"{token}-data_prep-sft:v1"}

    # 3rd run: nothing left to do
    plan, result, _ = run_pipe(new_id("pipe3"))
    assert [s.action for s in plan.stages] == [SKIP] * 4 and result is None
