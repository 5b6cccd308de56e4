"""``nemotron super3 eval --show RESULT [--format table|json]``: print a published eval-results artifact."""

from __future__ import annotations

from pathlib import Path

FORMATS = ("table", "json")


def show_eval_results(ref: str, fmt: str = "table") -> None:
    from nemotron.artifacts.registry import Registry
    from nemotron.env.profiles import load_env
    from nemotron.errors import UserError

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt} is not one of {', '.join(FORMATS)}", hint="use --format table or json")
    artifact = Registry(load_env().artifacts_root).get(ref)
    if artifact.kind != "eval-results":
        raise UserError(f"{ref} is a {artifact.kind} artifact, not eval-results", hint="pass an eval-results artifact")
    from nemotron.node.results import show_results

    print(show_results(Path(artifact.path), fmt))
