"""Is an identical experiment already running? (A second ``pipe`` after Ctrl-C on ``--run``, which
only detaches, would otherwise submit the whole chain again.)

Two submissions are the same plan when they run the same stages with the same resolved configs
(``job.config_hash``) from the same inputs — the per-experiment alias (``exp-<id>``) left out — on
the same profile. ``submit`` records that key in the experiment record (``plan_key``); a new pipe
compares its own key with the records whose jobs have not all ended.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from nemotron.errors import UserError


def plan_key(jobs: list[Any], profile_name: str) -> str:
    """A fingerprint of what ``jobs`` would compute, independent of the experiment id."""
    items = []
    for job in jobs:
        section = job.train_cfg.get("job") or {}
        alias = str(section.get("publish_alias") or "")
        run = {
            slot: (ref.replace(f":{alias}", ":<this experiment>") if alias and isinstance(ref, str) else ref)
            for slot, ref in sorted((job.train_cfg.get("run") or {}).items())
        }
        items.append([job.stage.name, section.get("config_hash", ""), run])
    blob = json.dumps([profile_name, items], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def running_duplicate(jobs: list[Any], profile_name: str) -> Any | None:
    """The newest recorded experiment with the same plan key that still has unfinished jobs, or None."""
    from nemotron.execution import states as st
    from nemotron.execution.records import all_records
    from nemotron.execution.shell import shell_for

    key = plan_key(jobs, profile_name)
    for record in reversed(all_records()):
        if record.plan_key != key:
            continue
        shell = shell_for(record.profile)
        try:
            statuses = st.experiment_states(record, shell)
        finally:
            shell.close()
        if any(not status.terminal for status in statuses.values()):
            return record
    return None


def refuse_if_running(jobs: list[Any], profile_name: str) -> None:
    """One line naming the running experiment and how to follow it; ``--force`` submits anyway."""
    record = running_duplicate(jobs, profile_name)
    if record is not None:
        raise UserError(
            f"an identical pipe is already running: experiment {record.experiment_id} "
            f"({', '.join(j.stage for j in record.jobs)})",
            hint=f"follow it with: nemotron logs {record.experiment_id} --follow (or pass --force to submit anyway)",
        )
