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
    also_reports: tuple[str, ...] = ()  # other version strings the same source reports (source installs)

    def accepts(self, installed: str) -> bool:
        """Whether a version string read in a container is this pin (exact, or a listed alias)."""
        return installed.split("+")[0] in (self.version, *self.also_reports)


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


MEGATRON_BRIDGE_RELEASE = (
    "https://github.com/NVIDIA-NeMo/Megatron-Bridge/blob/v0.6.0/docs/releases/software-versions.md"
)

CONTAINERS: dict[str, Container] = {
    # The Megatron-Bridge stages (pretrain, sft, quantize). Megatron-Bridge v0.4.0 is the first release
    # tag with the Nemotron 3 Super recipes (recipes/nemotronh/nemotron_3_super.py); NeMo Framework
    # 26.04 is the first container that ships it.
    "nvcr.io/nvidia/nemo:26.04": Container(
        image="nvcr.io/nvidia/nemo:26.04",
        pins=(
            Pin("megatron-bridge", "0.4.0", "megatron.bridge", "NVIDIA-NeMo/Megatron-Bridge", "v0.4.0"),
            # MB v0.4.0's 3rdparty/Megatron-LM submodule is d7288711, an ancestor of core_v0.17.0; a source
            # install reports the package_info.py version of that tree, 0.17.0rc0.
            Pin("megatron-core", "0.17.0", "megatron.core", "NVIDIA/Megatron-LM", "core_v0.17.0", ("0.17.0rc0",)),
            Pin("nvidia-modelopt", "0.43.0", "modelopt", "NVIDIA/Model-Optimizer", "0.43.0"),
        ),
        source=f"{MEGATRON_BRIDGE_RELEASE} (section 'NeMo Framework 26.04')",
    ),
    # The custom container Megatron-Bridge's Super3 docs name. It ships the super-v3 *branch* of
    # Megatron-Bridge (package_info.py at super-v3 says 0.4.0rc0), whose recipe API is the older
    # kwargs one (nemotron_3_super_finetune_config); no release tag matches it, so no contract facts
    # are read from it and the preflight refuses it (see MEGATRON_STAGES_CONTAINER). Which super-v3
    # commit the image holds is not published: the versions are those of the branch head f570c052
    # (2026-03-18), which the docs tell users to pull into the image.
    "nvcr.io/nvidia/nemo:26.02.nemotron_3_super": Container(
        image="nvcr.io/nvidia/nemo:26.02.nemotron_3_super",
        pins=(
            Pin("megatron-bridge", "0.4.0rc0", "megatron.bridge", "NVIDIA-NeMo/Megatron-Bridge", "super-v3"),
            Pin("megatron-core", "0.16.0rc0", "megatron.core", "NVIDIA/Megatron-LM", "23dd639cf3de"),
        ),
        source=(
            "Megatron-Bridge v0.4.0 docs/models/llm/nemotron3-super.md (use this container with the super-v3 "
            "branch); super-v3 src/megatron/bridge/package_info.py (0.4.0rc0) and 3rdparty/Megatron-LM (23dd639c)"
        ),
    ),
}
"""Container image -> the library versions it ships. Other stages (NeMo-RL, evaluator) add their rows."""

MEGATRON_STAGES_CONTAINER = "nvcr.io/nvidia/nemo:26.04"
"""The container whose Megatron-Bridge / Megatron-Core / ModelOpt the pretrain, SFT and quantize
translations are written and checked against (recipes/super3/megatron/api_reference/)."""


def container(image: str) -> Container:
    """The pinned facts for ``image``; KeyError names the known images."""
    try:
        return CONTAINERS[image]
    except KeyError:
        known = ", ".join(sorted(CONTAINERS)) or "none"
        raise KeyError(f"no pinned versions for container {image!r} (known: {known})") from None


# --- NeMo-RL (the RL stages) ----------------------------------------------------------------------
# The image tag names 0.5.0, but the Super3 recipe pairs it with NeMo-RL's `super-v3` release branch:
# NVIDIA-NeMo/Nemotron docs/nemotron/super3/rl/index.md (@e27b37133d65) says "Clone the super-v3 branch"
# next to this image, and the branch holds the published examples/configs/super/stage*.yaml and
# super_launch.sh. The branch's nemo_rl/package_info.py says 0.5.0rc0. No release tag covers it (v0.5.0
# differs: e.g. it reads data.train_jsonl_fpath where super-v3 reads data.train.data_path), so facts are
# read at the branch commit below: the last one before the April 2026 work-in-progress commits, i.e. the
# state the March 2026 Super release was built from. NeMo-Gym is the submodule commit of that tree
# (3rdparty/Gym-workspace/Gym, branch super-v3).
NEMO_RL_SUPER_V3 = "9c77bef6be4b5c4c79602b16c188cc4019da6d67"
NEMO_GYM_SUPER_V3 = "b9bd68548444eb58793260405cee123cc67c4b4f"
_RL_PINS = (
    Pin("nemo-rl", "0.5.0rc0", "nemo_rl", "NVIDIA-NeMo/RL", f"super-v3@{NEMO_RL_SUPER_V3}"),
    Pin("nemo-gym", "0.2.0rc0", "nemo_gym", "NVIDIA-NeMo/Gym", f"super-v3@{NEMO_GYM_SUPER_V3}"),
)
_RL_SOURCE = (
    "NVIDIA-NeMo/Nemotron docs/nemotron/super3/rl/index.md @e27b37133d65 (image + super-v3 branch); "
    f"NVIDIA-NeMo/RL super-v3 @{NEMO_RL_SUPER_V3[:12]} nemo_rl/package_info.py, .gitmodules"
)
RL_IMAGE = "nvcr.io/nvidia/nemo-rl:v0.5.0.nemotron_3_super"
RL_SWE_IMAGE = "nvcr.io/nvidia/nemo-rl:v0.5.0.nemotron_3_super_swe"
CONTAINERS[RL_IMAGE] = Container(RL_IMAGE, _RL_PINS, _RL_SOURCE)
# The SWE image is built FROM the RL image with NeMo-Gym venvs prefetched (same NeMo-RL tree):
# NVIDIA-NeMo/Nemotron docs/nemotron/super3/rl/swe.md @e27b37133d65.
CONTAINERS[RL_SWE_IMAGE] = Container(RL_SWE_IMAGE, _RL_PINS, _RL_SOURCE + "; swe.md (FROM the RL image)")


# --- NeMo-Evaluator deployment (the eval stage) ---------------------------------------------------
# The vLLM image nemo-evaluator-launcher deploys for Nemotron 3 Super, and its serving flags, as in the
# evaluator's own Super example at a release tag: NVIDIA-NeMo/Evaluator tag nemo-evaluator-launcher-v0.2.4
# packages/nemo-evaluator-launcher/examples/nemotron/nemotron-3-super/local_nemotron-3-super-120b-a12b.yaml
# ("Container: vllm/vllm-openai:v0.15.1" for the BF16, FP8 and NVFP4 checkpoints).
EVALUATOR_TAG = "nemo-evaluator-launcher-v0.2.4"
EVALUATOR_PIN = Pin(
    "nemo-evaluator-launcher", "0.2.4", "nemo_evaluator_launcher", "NVIDIA-NeMo/Evaluator", EVALUATOR_TAG
)
VLLM_EVAL_IMAGE = "vllm/vllm-openai:v0.15.1"
CONTAINERS[VLLM_EVAL_IMAGE] = Container(
    VLLM_EVAL_IMAGE,
    (Pin("vllm", "0.15.1", "vllm", "vllm-project/vllm", "v0.15.1"),),
    f"NVIDIA-NeMo/Evaluator {EVALUATOR_TAG} packages/nemo-evaluator-launcher/examples/nemotron/nemotron-3-super/"
    "local_nemotron-3-super-120b-a12b.yaml",
)
