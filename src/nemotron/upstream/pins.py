"""One table of pinned upstream versions: container image -> library versions and the release tags
that every contract fact in this project was read at.

Why one table: the translation (what keys we emit), the contract tests (what keys the library reads)
and the node preflight (is the container the one we checked against?) must all agree on one version
per library. A fact read at another tag, or on a PR branch, is how jobs that fail at start-up slip in.

Each row cites where the container -> version mapping was read. Import-light: no heavy imports here,
the CLI's dry-run reads this module.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Pin:
    """One library as a container ships it."""

    library: str  # distribution name as pip knows it, e.g. "megatron-bridge"
    version: str  # the version the container ships, e.g. "0.3.0"
    import_name: str  # module the node preflight imports to read the version, e.g. "megatron.bridge"
    repo: str  # GitHub owner/name the contract facts were read from
    tag: str  # release tag (or commit on main) those facts were read at; never a PR branch


@dataclass(frozen=True)
class Container:
    """A container image and the libraries it ships."""

    image: str
    pins: tuple[Pin, ...]
    source: str  # where the image -> versions mapping was read (release notes, Dockerfile at a tag, ...)

    def pin(self, library: str) -> Pin:
        for candidate in self.pins:
            if candidate.library == library:
                return candidate
        raise KeyError(f"{self.image} has no pin for {library}")


CONTAINERS: dict[str, Container] = {}
"""Filled by the stages that use each container (Megatron-Bridge/ModelOpt stages, NeMo-RL, evaluator)."""


def container(image: str) -> Container:
    """The pinned facts for ``image``; KeyError names the known images."""
    try:
        return CONTAINERS[image]
    except KeyError:
        known = ", ".join(sorted(CONTAINERS)) or "none"
        raise KeyError(f"no pinned versions for container {image!r} (known: {known})") from None
