#!/usr/bin/env python3
"""One-shot check of the GPU path on a lent CUDA machine (not collected by pytest; see docs/recipes.md).

Why a script and not tests: CI has no GPU, Megatron-Bridge (MB) needs Python 3.12 and its wheel pulls
GPU-only extras. This script runs once on a machine with one GPU and no internet, after
``tests/gpu/run.sh`` installed the pinned MB / Megatron-Core wheels carried in ``.whl/``, and prints
what worked. Sections (each prints PASS / FAIL / SKIP with a reason and never stops the others):

a. versions: Python, torch, CUDA, GPU, MB, Megatron-Core (against ``nemotron.upstream.pins``)
b. the Super3 recipe: import ``megatron.bridge.recipes.nemotronh.nemotron_3_super``, build the
   pretrain (and SFT) ConfigContainer from the recipe function, apply our translation's overrides at
   small scale and run ``ConfigContainer.validate()``
c. training steps on the GPU with Megatron-Core: a tiny hybrid Mamba model when mamba-ssm is there,
   else a tiny GPT + MoE with the local (non-Transformer-Engine) layer spec; loss per step
d. training steps of our tiny HF NemotronH (``recipes/super3/tiny``) on the device; loss must fall

Usage: ``python3 tests/gpu/check_megatron_bridge.py [--device cuda|cpu] [--sections abcd]``.
Output also goes to ``$OUT/gpu_check.log`` when ``$OUT`` is set (run.sh tees the whole output there). Exit status 1 when a section failed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
for _p in (REPO / "src", REPO / "recipes", REPO):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

RECIPE_MODULE = "megatron.bridge.recipes.nemotronh.nemotron_3_super"
HF_ID_ATTR = "NEMOTRON_3_SUPER_HF_MODEL_ID"  # module global the recipe functions read the HF config from

# Modules MB imports at module level on paths the config check does not exercise (Transformer Engine
# layers for LoRA, ModelOpt's NAS -> scipy, SFT datasets -> HF datasets/pyarrow, VLM data -> energon).
# When one is not installed, an import-only placeholder stands in while the recipe module imports, and
# is removed again afterwards, so any later real use fails loudly. Each one used is reported.
IMPORT_ONLY = ("scipy", "datasets", "megatron.energon", "transformer_engine")

# Megatron-Core modules imported before the Transformer Engine placeholder is installed, so their
# ``HAVE_TE`` flags see the truth (no TE on the check machine).
MCORE_FIRST = (
    "megatron.core",
    "megatron.core.utils",
    "megatron.core.transformer.transformer_config",
    "megatron.core.models.gpt.gpt_layer_specs",
    "megatron.core.models.gpt.gpt_model",
    "megatron.core.models.mamba.mamba_model",
    "megatron.core.transformer.moe.moe_layer",
    "megatron.core.fp8_utils",
    "megatron.core.optimizer",
    "megatron.core.distributed",
    "modelopt.torch.quantization",
)


class Report:
    """Prints each line and keeps it for ``$OUT/gpu_check.log``; collects one status per section."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.results: list[tuple[str, str, str]] = []
        self.t0 = time.monotonic()

    def say(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def result(self, section: str, status: str, reason: str) -> None:
        self.results.append((section, status, reason))
        self.say(f"[{section}] {status}: {reason}  ({time.monotonic() - self.t0:.0f}s)")

    def write(self) -> None:
        """``$GPU_CHECK_LOG``, else ``$OUT/gpu_check.log``; run.sh sets it empty because it tees everything."""
        default = str(Path(os.environ["OUT"]) / "gpu_check.log") if os.environ.get("OUT") else ""
        target = os.environ.get("GPU_CHECK_LOG", default)
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_text("\n".join(self.lines) + "\n")

    @property
    def failed(self) -> bool:
        return any(status == "FAIL" for _, status, _ in self.results)


class Skip(Exception):
    """A section cannot run here (missing kernel or library); not a failure of the project."""


def run_section(report: Report, name: str, title: str, fn: Callable[[Report], str]) -> None:
    report.say(f"== {name}. {title}")
    try:
        report.result(name, "PASS", fn(report))
    except Skip as exc:
        report.result(name, "SKIP", str(exc))
    except BaseException as exc:  # one broken section must not stop the others
        if isinstance(exc, KeyboardInterrupt):
            raise
        for line in traceback.format_exc().rstrip().splitlines()[-25:]:
            report.say("   " + line)
        report.result(name, "FAIL", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def pinned_versions() -> dict[str, set[str]]:
    """library -> versions pinned for any container in ``nemotron.upstream.pins`` (empty when none)."""
    from nemotron.upstream import pins

    out: dict[str, set[str]] = {}
    for container in pins.CONTAINERS.values():
        for pin in container.pins:
            out.setdefault(pin.library, set()).add(pin.version)
    return out


# --------------------------------------------------------------------------------------------- a
def section_versions(report: Report) -> str:
    import torch

    report.say(f"   python        {platform.python_version()} ({sys.executable})")
    report.say(
        f"   torch         {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
    )
    cuda = torch.cuda.is_available()
    if cuda:
        props = torch.cuda.get_device_properties(0)
        report.say(
            f"   gpu           {torch.cuda.device_count()} x {props.name}, {props.total_memory / 2**30:.1f} GiB, "
            f"sm_{props.major}{props.minor}"
        )
    else:
        report.say("   gpu           none visible to torch")
    pins = pinned_versions()
    missing = []
    for dist in (
        "megatron-bridge",
        "megatron-core",
        "nvidia-modelopt",
        "transformers",
        "transformer-engine",
        "mamba-ssm",
        "causal-conv1d",
    ):
        version = dist_version(dist)
        pinned = sorted(pins.get(dist, ()))
        note = f" (pinned: {', '.join(pinned)})" if pinned else " (no pin in nemotron.upstream.pins)"
        if dist in ("megatron-bridge", "megatron-core"):
            if version is None:
                missing.append(dist)
            elif pinned and version not in pinned:
                note += "  <-- NOT the pinned version"
        report.say(f"   {dist:<20}{version or 'not installed'}{note if dist.startswith('megatron') else ''}")
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not installed (did tests/gpu/run.sh install .whl/?)")
    return f"torch {torch.__version__}, {'CUDA ' + str(torch.version.cuda) if cuda else 'no CUDA device'}"


# --------------------------------------------------------------------------------------------- b
class _Placeholder(types.ModuleType):
    """An import-only stand-in: any attribute is a harmless ``nn.Module`` subclass."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        cls = _placeholder_class(name)
        setattr(self, name, cls)
        return cls


def _placeholder_class(name: str) -> type:
    import torch

    class _Meta(type(torch.nn.Module)):
        def __getattr__(cls, attr: str) -> Any:
            if attr.startswith("__"):
                raise AttributeError(attr)
            sub = _Meta(attr, (cls,), {})
            setattr(cls, attr, sub)
            return sub

    return _Meta(name, (torch.nn.Module,), {})


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if any(fullname == n or fullname.startswith(n + ".") for n in self.names):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _Placeholder(spec.name)
        module.__path__ = []  # type: ignore[attr-defined]
        module.__version__ = "0+placeholder"  # type: ignore[attr-defined]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


@contextlib.contextmanager
def import_only_placeholders(names: list[str]) -> Iterator[None]:
    finder = _PlaceholderFinder(set(names))
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for mod in [m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in names)]:
            del sys.modules[mod]


def _bare_package(name: str) -> None:
    """Register a package without running its ``__init__`` (its submodules import normally).

    ``megatron.bridge.recipes/__init__`` imports every recipe family (diffusion, VLM) and their
    dependencies; the Super3 recipe module needs none of them.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not a package")
    module = types.ModuleType(name)
    module.__path__ = list(spec.submodule_search_locations)
    module.__spec__ = spec
    sys.modules[name] = module


def import_recipe_module(report: Report) -> types.ModuleType:
    if RECIPE_MODULE in sys.modules:
        return sys.modules[RECIPE_MODULE]
    absent = [n for n in IMPORT_ONLY if not has_module(n)]
    early = [n for n in absent if n != "transformer_engine"]
    if absent:
        report.say(f"   import-only placeholders (not installed here): {', '.join(absent)}")
    with import_only_placeholders(early):
        for name in MCORE_FIRST:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        with import_only_placeholders([n for n in absent if n == "transformer_engine"]):
            importlib.import_module("megatron.bridge")
            try:
                return importlib.import_module(RECIPE_MODULE)
            except ImportError as exc:
                report.say(f"   full import failed ({exc}); importing the recipe module without recipes/__init__")
                _bare_package("megatron.bridge.recipes")
                return importlib.import_module(RECIPE_MODULE)


def tiny_hf_config_dir(root: Path) -> Path:
    """A local HF config for the recipe's ``AutoBridge.from_hf_pretrained`` (no hub on the check machine).

    It is our tiny Super-shaped NemotronH (configs/super3/pretrain/tiny.yaml), so the recipe builds a
    model provider of the same family at small scale.
    """
    from super3.tiny.model import build_config

    from nemotron.config.loader import load_stage_config
    from nemotron.pipeline.stages import get_stage

    model_section = load_stage_config(get_stage("pretrain"), "tiny").data["model"]
    config = build_config(model_section, vocab_size=1024)
    config.architectures = ["NemotronHForCausalLM"]
    out = root / "hf-config"
    config.save_pretrained(out)
    return out


SMALL_SCALE = {
    "parallel.tensor": 1,
    "parallel.pipeline": 1,
    "parallel.context": 1,
    "parallel.expert": 1,
    "parallel.expert_tensor": 1,
    "parallel.sequence_parallel": False,
    "train.train_iters": 10,
    "train.exit_interval": None,
    "train.global_batch_size": 8,
    "train.micro_batch_size": 1,
    "train.seq_length": 256,
    "train.eval_interval": 5,
    "train.eval_iters": 1,
    "optimizer.warmup_iters": 2,
    "optimizer.decay_iters": None,
    "optimizer.wsd_decay_iters": None,
    "precision": "bf16",
    "resources.nodes": 1,
    "resources.gpus_per_node": 1,
}
"""Our overrides for one GPU: the translation still runs on the default config, only the scale shrinks."""

NO_TE = {
    "model.transformer_impl": "local",
    "model.cuda_graph_impl": "none",
    "model.attention_backend": "auto",
    "model.cross_entropy_fusion_impl": "native",
    "model.use_te_rng_tracker": False,
    "rng.te_rng_tracker": False,
    "model.moe_permute_fusion": False,
    "model.moe_grouped_gemm": False,
    "model.gradient_accumulation_fusion": False,
    "model.use_fused_weighted_squared_relu": False,
    "model.moe_flex_dispatcher_backend": None,
}
"""Only when Transformer Engine is absent: the recipe's TE kernels -> megatron-core local ones."""


def resolved_train_cfg(stage: str, config: str, root: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    from tests.recipes.recipes_support import resolved_config

    return resolved_config(stage, config, root, **overrides)


def pretrain_inputs(root: Path) -> dict[str, Any]:
    from tests.recipes.recipes_support import artifact, write_indexed

    data = root / "pretrain-data"
    (data / "shards").mkdir(parents=True, exist_ok=True)
    write_indexed(data / "shards" / "train_0", [list(range(1, 300)) + [0]] * 4)
    write_indexed(data / "shards" / "valid_0", [list(range(1, 300)) + [0]])
    blend = {"train": [1.0, "shards/train_0"], "valid": [1.0, "shards/valid_0"], "test": []}
    (data / "blend.json").write_text(json.dumps(blend))
    # data prep records the tokenizer file it used (the translation points Megatron-Bridge at its directory)
    tok = {"path": str(root / "tokenizer" / "tokenizer.json"), "kind": "hf", "vocab_size": 1024}
    return {"data": artifact("pretrain-data", "pretrain-data", data, {"tokenizer": tok})}


def sft_inputs(root: Path, report: Report) -> dict[str, Any]:
    from tests.recipes.recipes_support import SFT_ROWS, artifact, megatron_model, write_packed_parquet

    data = root / "sft-data"
    for split, rows in (("train", SFT_ROWS), ("valid", SFT_ROWS[:1])):
        path = data / "splits" / split / "shard_000.parquet"
        if has_module("pyarrow"):
            write_packed_parquet(path, rows)
        else:  # the translation only locates the files; the dataset itself is read by MB at train time
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    if not has_module("pyarrow"):
        report.say("   sft data: pyarrow missing, so the Parquet files are empty placeholders (not read here)")
    meta = {
        "pack_size": 256,
        "tokenizer": {"path": str(root / "tokenizer" / "tokenizer.json"), "kind": "hf", "vocab_size": 1024},
    }
    return {
        "data": artifact("sft-data", "sft-data", data, meta),
        "model": megatron_model(root / "base-model"),
    }


def _set(cfg: Any, dotted: str, value: Any) -> bool:
    *parents, leaf = dotted.split(".")
    node = cfg
    for part in parents:
        node = getattr(node, part, None)
        if node is None:
            return False
    if not hasattr(node, leaf):
        return False
    setattr(node, leaf, value)
    return True


def build_and_validate(report: Report, module: types.ModuleType, stage: types.ModuleType, job: Any) -> str:
    """Recipe function -> ConfigContainer, our overrides on top, then the library's own validation."""
    from super3.megatron import common

    recipe = getattr(module, job.recipe)
    cfg = recipe(**getattr(job, "recipe_kwargs", {}))
    report.say(f"   {job.recipe}() -> {type(cfg).__name__}; {len(job.overrides)} overrides")
    dataset = getattr(job, "dataset", None)
    if dataset:
        build = getattr(stage, "_build_dataset", None) or getattr(stage, "build_dataset", None)
        if build is None:
            raise AttributeError(f"{stage.__name__} has no dataset builder for {dataset[0]}")
        cfg.dataset = build(dataset)  # as _launch does: the dataset section first, then the overrides
        report.say(f"   cfg.dataset = {type(cfg.dataset).__name__} from the translation's spec")
    apply = getattr(common, "apply_overrides", None)
    if apply is not None:
        apply(cfg, job.overrides)
    else:
        bad = [k for k, v in job.overrides.items() if not _set(cfg, k, v)]
        if bad:
            raise AttributeError(f"overrides name fields the ConfigContainer lacks: {bad}")
    if not has_module("transformer_engine"):
        changed = [k for k, v in NO_TE.items() if _set(cfg, k, v)]
        report.say(f"   no Transformer Engine here: {', '.join(changed)} set to local equivalents")
    cfg.validate()
    dp = getattr(cfg, "data_parallel_size", "?")
    return f"{job.recipe}: validate() passed (data_parallel_size={dp}, train_iters={cfg.train.train_iters})"


def section_recipe(report: Report) -> str:
    if not has_module("megatron.bridge"):
        raise RuntimeError("megatron.bridge is not installed")
    module = import_recipe_module(report)
    report.say(f"   imported {module.__name__} from {module.__file__}")
    functions = sorted(n for n in dir(module) if n.startswith("nemotron_3_super") and callable(getattr(module, n)))
    report.say(f"   recipe functions: {', '.join(functions)}")
    root = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    setattr(module, HF_ID_ATTR, str(tiny_hf_config_dir(root)))
    report.say(f"   {HF_ID_ATTR} -> local tiny NemotronH config (no hub access)")

    from super3.megatron import pretrain

    done, problems = [], []
    train_cfg = resolved_train_cfg("pretrain", "default", root, SMALL_SCALE)
    job = pretrain.build_pretrain_job(train_cfg, pretrain_inputs(root), root / "out-pretrain")
    try:
        done.append(build_and_validate(report, module, pretrain, job))
        report.say("   " + done[-1])
    except Exception as exc:
        problems.append(f"pretrain: {type(exc).__name__}: {exc}")
        report.say("   " + traceback.format_exc().rstrip().splitlines()[-1])

    from super3.megatron import sft

    for config in ("default", "lora"):
        try:
            small = {k: v for k, v in SMALL_SCALE.items() if k != "train.exit_interval"}
            small["data.pack_size"] = SMALL_SCALE["train.seq_length"]
            cfg = resolved_train_cfg("sft", config, root / config, small)
            job = sft.build_sft_job(cfg, sft_inputs(root / config, report), root / f"out-sft-{config}")
            done.append(build_and_validate(report, module, sft, job))
            report.say(f"   sft -c {config}: " + done[-1])
        except Exception as exc:
            problems.append(f"sft -c {config}: {type(exc).__name__}: {exc}")
            report.say(f"   sft -c {config}: " + traceback.format_exc().rstrip().splitlines()[-1])
    if problems:
        raise RuntimeError("; ".join(problems))
    return f"{len(done)} recipe config(s) built with our overrides and validated"


# --------------------------------------------------------------------------------------------- c
@contextlib.contextmanager
def single_process_group(device: str) -> Iterator[None]:
    import torch
    import torch.distributed as dist
    from megatron.core import parallel_state

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=0, world_size=1)
    parallel_state.initialize_model_parallel(1, 1)
    if device == "cuda":
        from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed

        model_parallel_cuda_manual_seed(1234)
    else:
        torch.manual_seed(1234)
    try:
        yield
    finally:
        parallel_state.destroy_model_parallel()
        if created:
            dist.destroy_process_group()


def fixed_batch(vocab: int, batch: int, seq: int, device: str) -> Any:
    """A learnable batch: each row repeats a short random motif, so the loss must fall within a few steps."""
    import torch

    g = torch.Generator().manual_seed(0)
    motif = torch.randint(1, vocab, (batch, 8), generator=g)
    return motif.repeat(1, seq // 8 + 2)[:, : seq + 1].to(device)


def train_steps(report: Report, step: Callable[[], Any], params: Any, steps: int, lr: float) -> list[float]:
    import torch

    opt = torch.optim.AdamW([p for p in params if p.requires_grad], lr=lr)
    losses = []
    for i in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = step()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        report.say(f"   step {i + 1:>2}  loss {losses[-1]:.4f}")
    return losses


def falls(losses: list[float]) -> bool:
    return len(losses) >= 2 and losses[-1] < 0.8 * losses[0]


def mcore_gpt_moe(report: Report, device: str, steps: int) -> str:
    import torch
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.transformer_config import TransformerConfig

    vocab, seq, batch = 512, 64, 4
    with single_process_group(device):
        config = TransformerConfig(
            num_layers=2,
            hidden_size=128,
            num_attention_heads=4,
            ffn_hidden_size=256,
            num_moe_experts=4,
            moe_router_topk=2,
            moe_ffn_hidden_size=128,
            moe_token_dispatcher_type="alltoall" if device == "cuda" else "allgather",  # alltoall needs CUDA streams
            moe_aux_loss_coeff=1e-3,
            add_bias_linear=False,
            use_cpu_initialization=True,
            bf16=device == "cuda",
            params_dtype=torch.bfloat16 if device == "cuda" else torch.float32,
            hidden_dropout=0.0,
            attention_dropout=0.0,
        )
        spec = get_gpt_layer_local_spec(num_experts=4, moe_grouped_gemm=False)
        model = GPTModel(
            config=config,
            transformer_layer_spec=spec,
            vocab_size=vocab,
            max_sequence_length=seq,
            position_embedding_type="rope" if device == "cuda" else "learned_absolute",  # mcore RoPE needs CUDA
        )
        # Megatron trains bf16 through Float16Module, which casts the whole module; the local spec's
        # torch LayerNorm is created in float32 whatever params_dtype says, so cast the same way here.
        model = model.to(device=device, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
        tokens = fixed_batch(vocab, batch, seq, device)
        inputs, labels = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
        position_ids = torch.arange(seq, device=device).unsqueeze(0).expand(batch, -1)
        mask = torch.tril(torch.ones(seq, seq, device=device, dtype=torch.bool)).logical_not()[None, None]

        def step() -> Any:
            return model(inputs, position_ids, mask, labels=labels).float().mean()

        losses = train_steps(report, step, model.parameters(), steps, lr=3e-3)
    if not falls(losses):
        raise RuntimeError(f"loss did not fall: {losses[0]:.3f} -> {losses[-1]:.3f}")
    return f"megatron-core GPT+MoE (local spec, 4 experts top-2): loss {losses[0]:.3f} -> {losses[-1]:.3f}"


def section_mcore(report: Report, device: str, steps: int) -> str:
    if not has_module("megatron.core"):
        raise RuntimeError("megatron.core is not installed")
    if device != "cuda":
        raise Skip("megatron-core's local attention and MoE dispatch allocate CUDA buffers: GPU only")
    import torch

    if not torch.cuda.is_available():
        raise Skip("no CUDA device")
    hybrid = [m for m in ("mamba_ssm", "causal_conv1d", "transformer_engine") if not has_module(m)]
    if hybrid:
        report.say(f"   hybrid Mamba model: skipped: {', '.join(hybrid)} missing")
    else:
        report.say("   hybrid Mamba model: kernels present but this check builds only the GPT+MoE model")
    result = mcore_gpt_moe(report, device, steps)
    if hybrid:
        result += f" (hybrid skipped: {hybrid[0]} missing)"
    return result


# --------------------------------------------------------------------------------------------- d
def section_tiny(report: Report, device: str, steps: int) -> str:
    import torch
    from super3.tiny.model import new_model

    from nemotron.config.loader import load_stage_config
    from nemotron.pipeline.stages import get_stage

    if device == "cuda" and not torch.cuda.is_available():
        raise Skip("no CUDA device")
    model_section = load_stage_config(get_stage("pretrain"), "tiny").data["model"]
    vocab, seq, batch = 512, 64, 8
    model = new_model(model_section, seed=0, vocab_size=vocab).to(device)
    report.say(
        f"   tiny NemotronH {model_section['hybrid_pattern']}: {sum(p.numel() for p in model.parameters()):,} params"
    )
    tokens = fixed_batch(vocab, batch, seq, device)

    def step() -> Any:
        return model(input_ids=tokens[:, :-1], labels=tokens[:, :-1]).loss

    losses = train_steps(report, step, model.parameters(), steps, lr=3e-3)
    if not falls(losses):
        raise RuntimeError(f"loss did not fall: {losses[0]:.3f} -> {losses[-1]:.3f}")
    return f"HF NemotronH on {device}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--sections", default="abcd", help="which of a, b, c, d to run (default all)")
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args(argv)

    report = Report()
    report.say(f"gpu check: {REPO} on {platform.node()}, device {args.device}")
    sections = {
        "a": ("versions", section_versions),
        "b": ("Megatron-Bridge Super3 recipe config + our overrides + validate()", section_recipe),
        "c": ("Megatron-Core training steps", lambda r: section_mcore(r, args.device, args.steps)),
        "d": ("tiny HF NemotronH training steps", lambda r: section_tiny(r, args.device, args.steps)),
    }
    for key in args.sections:
        title, fn = sections[key]
        run_section(report, key, title, fn)
    report.say("== summary")
    for name, status, reason in report.results:
        report.say(f"   {name} {status:<4} {reason}")
    report.say(f"   total {time.monotonic() - report.t0:.0f}s")
    report.write()
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
