"""Mirror local publishes into W&B, and replay what an offline node could not record.

The local registry is the truth; W&B is a view on top. Every publish (when ``[wandb]`` is set)
logs the artifact to a W&B run named after the producing job, with the data added by reference
(``file://``, never uploaded) and the local record in ``metadata["nemotron"]``:

- online: the run ``use_artifact``s each input (as ``NAME:local-vN``) and logs the output, so W&B
  draws the same lineage graph;
- offline (``WANDB_MODE=offline`` on the node, or online init failing fast): the output is logged
  into an offline run; ``use_artifact`` raises offline, so the input edges are kept as
  ``pending_edges`` in ``<name>/v<N>.wandb.json`` for ``nemotron artifacts sync``;
- disabled: nothing is written.

A failing mirror never fails the publish: its error lands in the state file and ``sync`` retries.
Nothing waits on the network for long: ``WANDB_HTTP_TIMEOUT`` / ``WANDB_INIT_TIMEOUT`` and the
init timeout are set before wandb is touched. ``wandb`` is imported inside functions only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.artifacts.model import Artifact
from nemotron.errors import UserError

MODES = ("online", "offline", "disabled")
LOCAL_ALIAS = "local-v{version}"
"""W&B numbers versions itself; this alias ties a W&B version to the local ``name:vN``."""


@dataclass(frozen=True)
class WandbSettings:
    """The ``[wandb]`` section of env.toml, as a plain dict turned into fields."""

    project: str
    entity: str | None = None
    mode: str = "online"
    dir: str | None = None
    base_url: str | None = None
    init_timeout: float = 30.0
    http_timeout: float = 20.0
    sync_timeout: float = 600.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> WandbSettings | None:
        """None when W&B is not configured (no section or no project).

        ``WANDB_MODE`` in the environment wins over the dict's ``mode``: it is the per-machine knob
        (compute nodes without network set it to ``offline``).
        """
        if not data or not data.get("project"):
            return None
        mode = os.environ.get("WANDB_MODE") or data.get("mode") or "online"
        if mode == "dryrun":
            mode = "offline"
        if mode not in MODES:
            raise UserError(f"[wandb] mode '{mode}' is not one of {', '.join(MODES)}")
        return cls(
            project=str(data["project"]),
            entity=data.get("entity") or None,
            mode=mode,
            dir=data.get("dir") or None,
            base_url=data.get("base_url") or None,
            init_timeout=float(data.get("init_timeout", 30.0)),
            http_timeout=float(data.get("http_timeout", 20.0)),
            sync_timeout=float(data.get("sync_timeout", 600.0)),
        )

    def apply_env(self) -> None:
        """Bound every network wait before wandb reads its settings (never hang on a dead link)."""
        os.environ.setdefault("WANDB_HTTP_TIMEOUT", str(int(self.http_timeout)))
        os.environ.setdefault("WANDB_INIT_TIMEOUT", str(int(self.init_timeout)))
        if self.dir:
            Path(self.dir).mkdir(parents=True, exist_ok=True)


def wandb_run_id(job_id: str, fallback: str) -> str:
    """A W&B run id for a job: one run per producing job, so re-sync finds the same run."""
    raw = job_id or fallback
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw)[:64]


def wandb_metadata(artifact: Artifact) -> dict[str, Any]:
    """User metadata plus the full local record under ``nemotron`` (readable from W&B alone)."""
    return {
        **artifact.metadata,
        "nemotron": {
            "ref": artifact.ref,
            "version": artifact.version,
            "digest": artifact.digest,
            "path": artifact.path,
            "run": artifact.run.to_dict(),
            "inputs": list(artifact.inputs),
            "input_slots": dict(artifact.input_slots),
        },
    }


def qualified(settings: WandbSettings, name: str, version: int, entity: str | None = None) -> str:
    """``entity/project/name:local-vN`` (entity omitted when unknown: W&B uses the default)."""
    prefix = "/".join(p for p in (entity or settings.entity, settings.project) if p)
    return f"{prefix}/{name}:{LOCAL_ALIAS.format(version=version)}"


def _warn(message: str) -> None:
    print(f"nemotron: warning: {message}", file=sys.stderr)


@dataclass
class WandbMirror:
    """Registry mirror (``Registry(root, mirror=WandbMirror(settings))``)."""

    settings: WandbSettings
    allow_offline_fallback: bool = True
    warn: Callable[[str], None] = field(default=_warn)

    def publish(self, registry: Any, artifact: Artifact, inputs: list[Artifact]) -> dict[str, Any]:
        """Mirror one publish; records and returns the state, never raises for W&B failures."""
        try:
            state = self._publish(artifact, inputs)
        except Exception as exc:  # noqa: BLE001 - the local publish already succeeded
            state = {"state": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}
            self.warn(f"W&B mirror of {artifact.ref} failed ({state['error']}); `nemotron artifacts sync` retries")
        state.setdefault("project", self.settings.project)
        registry.write_mirror_state(artifact, state)
        return state

    # -- the library boundary -----------------------------------------------------------------
    def _init(self, artifact: Artifact, mode: str):
        import wandb

        run = artifact.run
        kwargs: dict[str, Any] = {
            "project": self.settings.project,
            "entity": self.settings.entity,
            "dir": self.settings.dir,
            "job_type": run.stage or "nemotron",
            "group": run.experiment or None,
            "name": run.job_id or artifact.ref,
            "id": wandb_run_id(run.job_id, f"{artifact.name}-v{artifact.version}"),
            "config": {"nemotron": run.to_dict()},
            "reinit": "create_new",
        }
        wb_settings: dict[str, Any] = {"init_timeout": self.settings.init_timeout, "silent": True}
        if self.settings.base_url:
            wb_settings["base_url"] = self.settings.base_url
        if mode == "online":
            kwargs["resume"] = "allow"
        return wandb.init(mode=mode, settings=wandb.Settings(**wb_settings), **kwargs)

    def _open_run(self, artifact: Artifact):
        mode = self.settings.mode
        if mode == "online":
            try:
                return self._init(artifact, "online")
            except Exception as exc:  # noqa: BLE001 - CommError, timeouts, auth: all mean "no W&B now"
                if not self.allow_offline_fallback:
                    raise
                self.warn(f"W&B online init failed ({type(exc).__name__}); logging {artifact.ref} offline")
                import wandb

                wandb.teardown()  # the service still holds the half-started run's id; start afresh
        return self._init(artifact, "offline")

    def _publish(self, artifact: Artifact, inputs: list[Artifact]) -> dict[str, Any]:
        if self.settings.mode == "disabled":
            return {"state": "disabled"}
        self.settings.apply_env()
        import wandb

        own = wandb.run is None
        run = self._open_run(artifact) if own else wandb.run
        try:
            offline = bool(run.offline)
            entity = None if offline else run.entity
            used: list[str] = []
            pending: list[str] = []
            for item in inputs:
                if offline:
                    pending.append(item.ref)
                    continue
                try:
                    run.use_artifact(qualified(self.settings, item.name, item.version, entity))
                    used.append(item.ref)
                except Exception:  # noqa: BLE001 - input never mirrored: sync logs it, then the edge
                    pending.append(item.ref)
            wb_art = build_wandb_artifact(artifact)
            aliases = [*artifact.aliases, LOCAL_ALIAS.format(version=artifact.version)]
            run.log_artifact(wb_art, aliases=aliases)
            state: dict[str, Any] = {
                "state": "offline" if offline else "online",
                "run_id": run.id,
                "entity": entity,
                "project": run.project,
                "aliases": aliases,
                "used": used,
                "pending_edges": pending,
            }
            if offline:
                state["offline_dir"] = str(run.settings.sync_dir)
                state["uploaded"] = False
        finally:
            if own:
                run.finish()
        if offline and own:
            from nemotron.artifacts.wandb_offline import wait_for_artifact

            # finish() may return before the log is on disk: confirm what is really written
            state["verified"] = wait_for_artifact(Path(state["offline_dir"]), artifact.name) is not None
            if not state["verified"]:
                self.warn(f"W&B offline log of {artifact.ref} not found on disk yet in {state['offline_dir']}")
        return state


def build_wandb_artifact(artifact: Artifact):
    """A ``wandb.Artifact`` that references (never uploads) the data and carries the local record."""
    import wandb

    wb_art = wandb.Artifact(
        artifact.name,
        type=artifact.kind,
        description=f"{artifact.ref} from stage {artifact.run.stage} (job {artifact.run.job_id or '-'})",
        metadata=wandb_metadata(artifact),
    )
    if "://" in artifact.path:
        wb_art.add_reference(artifact.path, checksum=False)
    elif Path(artifact.path).exists():
        wb_art.add_reference(Path(artifact.path).as_uri(), checksum=False, max_objects=1_000_000)
    return wb_art


# -- sync ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncAction:
    """One step of ``nemotron artifacts sync``.

    ``upload``: push an offline run directory (``wandb sync``); ``log``: log an artifact that never
    reached W&B, from a new online run for its job; ``use``: record that the producing run of
    ``artifact`` used ``detail`` (an input ref).
    """

    action: str
    artifact: str
    detail: str = ""


def _ordered(registry: Any) -> list[Artifact]:
    # Inputs exist before their consumers are published, so creation time is a topological order.
    return sorted(registry.list(), key=lambda a: (a.run.created_at, a.name, a.version))


def plan_sync(registry: Any) -> list[SyncAction]:
    """What ``sync`` would do, from the local registry and the mirror state files alone."""
    actions: list[SyncAction] = []
    for art in _ordered(registry):
        state = registry.mirror_state(art) or {}
        status = state.get("state")
        if status in (None, "failed", "disabled"):
            actions.append(SyncAction("log", art.ref))
            actions.extend(SyncAction("use", art.ref, ref) for ref in art.inputs)
            continue
        if status == "offline" and not state.get("uploaded"):
            actions.append(SyncAction("upload", art.ref, str(state.get("offline_dir", ""))))
        actions.extend(SyncAction("use", art.ref, ref) for ref in state.get("pending_edges", []))
    return actions


def _api(settings: WandbSettings):
    """A ``wandb.Api`` that fails within ``http_timeout`` when W&B is unreachable."""
    settings.apply_env()
    import wandb

    overrides = {"base_url": settings.base_url} if settings.base_url else {}
    if settings.entity:
        overrides["entity"] = settings.entity
    overrides["project"] = settings.project
    hint = "run sync where the network and WANDB_API_KEY are available; the local registry is unaffected"
    outcome: dict[str, Any] = {}

    def connect() -> None:
        try:
            api = wandb.Api(overrides=overrides, timeout=int(settings.http_timeout))
            _ = api.default_entity  # forces one authenticated request now, not halfway through sync
            outcome["api"] = api
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc

    # wandb retries a refused connection for a while on top of the per-request timeout; a daemon
    # thread bounds the whole check so an unreachable server is one line after ~2x http_timeout.
    deadline_s = 2 * settings.http_timeout + 5
    probe = threading.Thread(target=connect, name="wandb-connect", daemon=True)
    probe.start()
    probe.join(timeout=deadline_s)
    if "api" in outcome:
        return outcome["api"]
    exc = outcome.get("error")
    if exc is None:
        raise UserError(f"cannot reach W&B (no answer within {deadline_s:.0f} s)", hint=hint)
    raise UserError(f"cannot reach W&B ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", hint=hint) from exc


def _upload_offline(settings: WandbSettings, run_dir: str) -> None:
    if not run_dir or not Path(run_dir).is_dir():
        raise UserError(f"offline W&B run directory {run_dir or '?'} is gone", hint="re-log with sync --relog")
    cmd = [sys.executable, "-m", "wandb", "sync", "--project", settings.project]
    if settings.entity:
        cmd += ["--entity", settings.entity]
    cmd.append(run_dir)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=settings.sync_timeout)
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"`wandb sync {run_dir}` did not finish in {settings.sync_timeout:.0f}s") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"`wandb sync {run_dir}` failed: {tail[0][:300]}")


def run_sync(
    registry: Any,
    settings: WandbSettings,
    *,
    relog: bool = False,
    echo: Callable[[str], None] = print,
) -> list[SyncAction]:
    """Execute ``plan_sync``: upload offline runs, log never-mirrored artifacts, replay use-edges.

    Checks connectivity first (a dead network is a ``UserError`` within ``http_timeout``), then
    updates each version's mirror state as its steps succeed, so an interrupted sync resumes.
    """
    if settings.mode == "disabled":
        raise UserError("W&B mode is disabled; nothing to sync", hint="set [wandb] mode or WANDB_MODE=online")
    online = WandbSettings(**{**settings.__dict__, "mode": "online"})
    api = _api(online)
    entity = online.entity or api.default_entity
    done: list[SyncAction] = []
    by_ref = {a.ref: a for a in registry.list()}
    for step in plan_sync(registry):
        art = by_ref[step.artifact]
        state = dict(registry.mirror_state(art) or {})
        if step.action == "upload" and relog:
            step = SyncAction("log", step.artifact)
        if step.action == "upload":
            echo(f"upload {step.artifact} from {step.detail}")
            _upload_offline(online, step.detail)
            state.update(uploaded=True, state="online", entity=entity)
        elif step.action == "log":
            echo(f"log {step.artifact}")
            mirror = WandbMirror(online, allow_offline_fallback=False)
            new_state = mirror._publish(art, [])  # edges follow as "use" steps
            state = {**new_state, "pending_edges": list(art.inputs)}
        elif step.action == "use":
            echo(f"use {step.detail} -> {step.artifact}")
            inp = registry.get(step.detail)
            run_path = f"{entity}/{online.project}/{state.get('run_id') or wandb_run_id(art.run.job_id, art.ref)}"
            wb_input = api.artifact(qualified(online, inp.name, inp.version, entity))
            api.run(run_path).use_artifact(wb_input)
            state["pending_edges"] = [r for r in state.get("pending_edges", []) if r != step.detail]
            state.setdefault("used", []).append(step.detail)
        registry.write_mirror_state(art, state)
        done.append(step)
    return done
