"""Node entry for the data-prep stages: ``python recipes/super3/data_prep.py --config train.yaml``.

Dispatches on ``job.stage`` (``data_prep.pretrain`` | ``data_prep.sft`` | ``data_prep.rl``), runs the
stage into ``output_dir`` (or ``job.output_dir``), then publishes the artifact through
``nemotron.artifacts.node.publish_output``. Relative paths resolve from ``job.submit_cwd`` when the
submit side records it, else from the cwd, then from the repository root. Under Slurm every task (``SLURM_PROCID`` of
``SLURM_NTASKS``) runs this script on its share of shards; the task that finalizes (the last one to
finish) publishes, so exactly one artifact version appears per run. ``manifest.json`` next to the
data describes the output either way. Exit codes: 0 ok, 2 user error (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

STAGES = ("data_prep.pretrain", "data_prep.sft", "data_prep.rl")


def _run(train_cfg: dict[str, Any], progress: bool) -> dict[str, Any]:
    from nemotron.config.schemas.data_prep import SCHEMAS
    from nemotron.data_prep.common import validate
    from nemotron.errors import UserError
    from nemotron.pipeline.stages import get_stage

    job = train_cfg.get("job") or {}
    stage = get_stage(str(job.get("stage") or "")).name if job.get("stage") else ""
    if stage not in STAGES:
        raise UserError(f"job.stage is '{job.get('stage')}', not a data-prep stage", hint=f"one of {', '.join(STAGES)}")
    cfg = validate(train_cfg, SCHEMAS[stage])
    submit_cwd = job.get("submit_cwd")
    if submit_cwd and Path(submit_cwd).is_dir():
        # Relative paths typed on the command line mean the submitter's directory, not the job's.
        os.chdir(submit_cwd)
    output_dir = cfg.output_dir or job.get("output_dir")
    if job.get("artifacts_root") and job.get("output_dir"):
        from nemotron.artifacts.node import check_output_dir

        check_output_dir(train_cfg)  # a published directory is never written again
    if stage == "data_prep.pretrain":
        from nemotron.data_prep.pretrain import prepare_pretrain as prepare
    elif stage == "data_prep.sft":
        from nemotron.data_prep.sft import prepare_sft as prepare
    else:
        from nemotron.data_prep.rl import prepare_rl as prepare
    return prepare(cfg, output_dir, progress=progress)


def artifact_metadata(result: dict[str, Any]) -> dict[str, Any]:
    """The manifest without per-file checksums (those stay in manifest.json next to the data)."""
    meta = {k: v for k, v in result.items() if k not in ("files", "publish", "finalized")}
    meta["datasets"] = [{**d, "files": len(d.get("files", []))} for d in result.get("datasets", [])]
    meta["manifest"] = str(Path(result["output_dir"]) / "manifest.json")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="train.yaml written by the submit side")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar / periodic progress lines")
    args = parser.parse_args(argv)

    import yaml

    from nemotron.errors import UserError

    try:
        with open(args.config) as fh:
            train_cfg = yaml.safe_load(fh) or {}
        result = _run(train_cfg, progress=not args.no_progress)
        if not result["finalized"]:
            print(f"data prep: {result['run']['shards_run']} shards done here; another task finalizes", file=sys.stderr)
            return 0
        print(f"data prep: output complete in {result['output_dir']}", file=sys.stderr)
        job = train_cfg.get("job") or {}
        if not result["publish"]:
            return 0
        if not job.get("artifacts_root"):
            print(
                "data prep: no job.artifacts_root, not publishing (manifest.json is next to the data)", file=sys.stderr
            )
            return 0
        from nemotron.artifacts.node import publish_output

        artifact = publish_output(train_cfg, result["output_dir"], artifact_metadata(result), inputs={})
        print(f"data prep: published {getattr(artifact, 'ref', artifact)}", file=sys.stderr)
        return 0
    except UserError as err:
        print(f"error: {err.one_line()}", file=sys.stderr)
        return UserError.exit_code
    except OSError as exc:
        from nemotron.errors import from_os_error

        err = from_os_error(exc)
        if err is None:
            raise
        print(f"error: {err.one_line()}", file=sys.stderr)
        return UserError.exit_code


if __name__ == "__main__":
    sys.exit(main())
