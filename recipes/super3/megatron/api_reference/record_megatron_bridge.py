"""Re-record ``megatron_bridge.json`` from the pinned Megatron-Bridge and Megatron-LM release tags.

Why a script: Megatron-Bridge's config and recipe modules do not import on CPU (every
``megatron.bridge`` import pulls in Transformer Engine through ``peft/lora_layers.py``), so the
contract facts cannot come from the installed library. They are read from the source at the pinned
tags (``nemotron.upstream.pins``) by parsing it, never by hand and never from a branch:

    python recipes/super3/megatron/api_reference/record_megatron_bridge.py \\
        /path/to/Megatron-Bridge.git /path/to/Megatron-LM.git

Each argument is a git directory (a clone or a bare mirror) that has the pinned tags. For every
dataclass the translation touches it records each field and whether the library *requires* it (no
default); for every library function we call, each parameter and whether it is required. The tests in
``tests/recipes`` check our emitted keys and call arguments against these facts in both directions.
This is a developer tool: the CLI and the nodes never run it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[3] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from nemotron.upstream.pins import MEGATRON_STAGES_CONTAINER, container  # noqa: E402

BRIDGE_ROOT = "src/"  # megatron.bridge.* lives under src/megatron/bridge in Megatron-Bridge
CORE_ROOT = ""  # megatron.core.* / megatron.training.* live at the top of Megatron-LM

# ConfigContainer section -> the class the recipes put there (recipes/nemotronh/nemotron_3_super.py).
SECTIONS = {
    "model": ("megatron.bridge.models.mamba.mamba_provider", "MambaModelProvider"),
    "train": ("megatron.bridge.training.config", "TrainingConfig"),
    "validation": ("megatron.bridge.training.config", "ValidationConfig"),
    "optimizer": ("megatron.bridge.training.config", "OptimizerConfig"),
    "scheduler": ("megatron.bridge.training.config", "SchedulerConfig"),
    "checkpoint": ("megatron.bridge.training.config", "CheckpointConfig"),
    "logger": ("megatron.bridge.training.config", "LoggerConfig"),
    "tokenizer": ("megatron.bridge.training.tokenizers.config", "TokenizerConfig"),
    "rng": ("megatron.bridge.training.config", "RNGConfig"),
    "ddp": ("megatron.bridge.training.config", "DistributedDataParallelConfig"),
    "dataset": ("megatron.bridge.training.config", "GPTDatasetConfig"),
    "peft": ("megatron.bridge.peft.lora", "LoRA"),
}
EXTRA_CLASSES = {
    "ConfigContainer": ("megatron.bridge.training.config", "ConfigContainer"),
    "FinetuningDatasetConfig": ("megatron.bridge.training.config", "FinetuningDatasetConfig"),
    "PackedSequenceSpecs": ("megatron.bridge.data.datasets.packed_sequence", "PackedSequenceSpecs"),
}
FUNCTIONS = {
    "megatron.bridge.training.pretrain.pretrain": ("megatron.bridge.training.pretrain", "pretrain"),
    "megatron.bridge.training.finetune.finetune": ("megatron.bridge.training.finetune", "finetune"),
    "megatron.bridge.training.gpt_step.forward_step": ("megatron.bridge.training.gpt_step", "forward_step"),
    "AutoBridge.from_hf_pretrained": ("megatron.bridge.models.conversion.auto_bridge", "AutoBridge.from_hf_pretrained"),
    "AutoBridge.to_megatron_provider": (
        "megatron.bridge.models.conversion.auto_bridge",
        "AutoBridge.to_megatron_provider",
    ),
    "AutoBridge.save_megatron_model": (
        "megatron.bridge.models.conversion.auto_bridge",
        "AutoBridge.save_megatron_model",
    ),
    "AutoBridge.load_megatron_model": (
        "megatron.bridge.models.conversion.auto_bridge",
        "AutoBridge.load_megatron_model",
    ),
    "AutoBridge.export_ckpt": ("megatron.bridge.models.conversion.auto_bridge", "AutoBridge.export_ckpt"),
    "MambaModelProvider.finalize": ("megatron.bridge.models.mamba.mamba_provider", "MambaModelProvider.finalize"),
    "ModelProviderMixin.initialize_model_parallel": (
        "megatron.bridge.models.model_provider",
        "ModelProviderMixin.initialize_model_parallel",
    ),
    "ModelProviderMixin.provide_distributed_model": (
        "megatron.bridge.models.model_provider",
        "ModelProviderMixin.provide_distributed_model",
    ),
    "nemotron_3_super_pretrain_config": (
        "megatron.bridge.recipes.nemotronh.nemotron_3_super",
        "nemotron_3_super_pretrain_config",
    ),
    "nemotron_3_super_sft_config": (
        "megatron.bridge.recipes.nemotronh.nemotron_3_super",
        "nemotron_3_super_sft_config",
    ),
    "nemotron_3_super_peft_config": (
        "megatron.bridge.recipes.nemotronh.nemotron_3_super",
        "nemotron_3_super_peft_config",
    ),
}
SCRIPTS = {
    # examples run as scripts in the container (their argparse flags are the contract)
    "examples/peft/merge_lora.py": "merge_lora",
}


class Source:
    """Files of one repository at one tag, read with ``git show`` (works on bare mirrors)."""

    def __init__(self, git_dir: str, tag: str, root: str) -> None:
        self.git_dir, self.tag, self.root = git_dir, tag, root
        self.commit = self._git("rev-parse", f"{tag}^{{commit}}").strip()

    def _git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", self.git_dir, *args], check=True, capture_output=True, text=True
        ).stdout

    def read(self, path: str) -> str | None:
        try:
            return self._git("show", f"{self.tag}:{path}")
        except subprocess.CalledProcessError:
            return None


class Reader:
    """Resolves ``module.Class`` across Megatron-Bridge and Megatron-LM and parses dataclasses."""

    def __init__(self, bridge: Source, core: Source) -> None:
        self.bridge, self.core = bridge, core
        self.cache: dict[str, tuple[ast.Module, str, Source] | None] = {}

    def module(self, name: str) -> tuple[ast.Module, str, Source] | None:
        if name in self.cache:
            return self.cache[name]
        src = self.bridge if name.startswith("megatron.bridge") else self.core
        base = src.root + name.replace(".", "/")
        found = None
        for path in (base + ".py", base + "/__init__.py"):
            text = src.read(path)
            if text is not None:
                found = (ast.parse(text), path, src)
                break
        self.cache[name] = found
        return found

    def _resolve_import(self, module: str, tree: ast.Module, name: str) -> tuple[str, str] | None:
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if (alias.asname or alias.name) == name:
                        target = node.module or ""
                        if node.level:
                            parts = module.split(".")
                            is_pkg = self.module(module)[1].endswith("__init__.py")
                            keep = len(parts) - node.level + (1 if is_pkg else 0)
                            target = ".".join(parts[:keep] + ([target] if target else []))
                        return target, alias.name
        return None

    def find_class(self, module: str, name: str) -> tuple[ast.ClassDef, str, str, Source] | None:
        found = self.module(module)
        if found is None:
            return None
        tree, path, src = found
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                return node, module, path, src
        imported = self._resolve_import(module, tree, name)
        return self.find_class(*imported) if imported else None

    def fields(self, module: str, name: str) -> tuple[dict[str, dict], list[str]]:
        """Dataclass fields (bases first, subclasses override) and the files they were read from."""
        found = self.find_class(module, name)
        if found is None:
            raise LookupError(f"{module}.{name} not found")
        node, mod, path, src = found
        out: dict[str, dict] = {}
        files = [f"{src.tag}:{path}"]
        for base in node.bases:
            base_name = ast.unparse(base)
            if base_name in ("ABC", "Generic", "object") or base_name.startswith(("Generic[", "Protocol")):
                continue
            if self.find_class(mod, base_name.split(".")[-1]) is None:
                continue
            base_fields, base_files = self.fields(mod, base_name.split(".")[-1])
            out.update(base_fields)
            files += [f for f in base_files if f not in files]
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                annotation = ast.unparse(stmt.annotation)
                if annotation.startswith("ClassVar"):
                    continue
                required = stmt.value is None or _is_required_field_call(stmt.value)
                out[stmt.target.id] = {"required": required, "type": annotation}
            elif isinstance(stmt, ast.FunctionDef) and any(
                ast.unparse(d) == f"{stmt.name}.setter" for d in stmt.decorator_list
            ):
                # a settable property (e.g. GPTDatasetConfig.seq_length aliases sequence_length)
                out.setdefault(stmt.name, {"required": False, "type": "property"})
        return out, files

    def signature(self, module: str, qualname: str) -> tuple[dict[str, str], str]:
        cls_name, _, func_name = qualname.rpartition(".")
        if cls_name:
            found = self.find_class(module, cls_name)
            if found is None:
                raise LookupError(f"{module}.{cls_name} not found")
            body, path, src = found[0].body, found[2], found[3]
        else:
            tree, path, src = self.module(module)
            body = tree.body
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == func_name:
                return _params(node), f"{src.tag}:{path}"
        raise LookupError(f"{module}.{qualname} not found")


def _is_required_field_call(value: ast.expr) -> bool:
    """``field(...)`` with neither ``default`` nor ``default_factory`` is a required field."""
    if isinstance(value, ast.Call) and ast.unparse(value.func) in ("field", "dataclasses.field"):
        return not any(k.arg in ("default", "default_factory") for k in value.keywords)
    return False


def _params(node: ast.FunctionDef) -> dict[str, str]:
    args = node.args
    out: dict[str, str] = {}
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(positional, defaults, strict=True):
        if arg.arg in ("self", "cls"):
            continue
        out[arg.arg] = "required" if default is None else "optional"
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        out[arg.arg] = "required" if default is None else "optional"
    if args.vararg:
        out["*" + args.vararg.arg] = "optional"
    if args.kwarg:
        out["**" + args.kwarg.arg] = "optional"
    return out


def _script_flags(text: str) -> dict[str, str]:
    """``parser.add_argument("--flag", ..., required=True)`` -> {"--flag": "required"|"optional"}."""
    out: dict[str, str] = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            flags = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")]
            required = any(
                k.arg == "required" and isinstance(k.value, ast.Constant) and k.value.value for k in node.keywords
            )
            for flag in flags:
                out[flag] = "required" if required else "optional"
    return out


def _presets(reader: Reader) -> list[str]:
    tree, _, _ = reader.module("megatron.bridge.training.mixed_precision")
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "register":
            names += [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if isinstance(node, ast.FunctionDef) and any(ast.unparse(d) == "register" for d in node.decorator_list):
            names.append(node.name)  # @register keys the preset by the function name
    return sorted(set(names))


def _constant(reader: Reader, module: str, name: str) -> object:
    """A module-level literal (``REQUIRED_COLUMNS = {...}``) read from the source."""
    tree, _, _ = reader.module(module)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            value = ast.literal_eval(node.value)
            return sorted(value) if isinstance(value, set) else value
    raise LookupError(f"{module}.{name} not found")


def record(bridge_git: str, core_git: str) -> dict:
    pins = container(MEGATRON_STAGES_CONTAINER)
    mb, mc = pins.pin("megatron-bridge"), pins.pin("megatron-core")
    reader = Reader(Source(bridge_git, mb.tag, BRIDGE_ROOT), Source(core_git, mc.tag, CORE_ROOT))
    classes: dict[str, dict] = {}
    for key, (module, name) in {**{v[1]: v for v in SECTIONS.values()}, **EXTRA_CLASSES}.items():
        fields, files = reader.fields(module, name)
        classes[key] = {"module": module, "read_from": files, "fields": fields}
    functions = {}
    for key, (module, qualname) in FUNCTIONS.items():
        params, where = reader.signature(module, qualname)
        functions[key] = {"module": module, "read_from": where, "params": params}
    scripts = {}
    for path in SCRIPTS:
        text = reader.bridge.read(path)
        scripts[path] = {"read_from": f"{mb.tag}:{path}", "flags": _script_flags(text)}
    return {
        "library": "megatron-bridge",
        "recorded": time.strftime("%Y-%m-%d", time.gmtime()),
        "container": MEGATRON_STAGES_CONTAINER,
        "note": (
            "Read by record_megatron_bridge.py from the pinned release tags (nemotron.upstream.pins). "
            "megatron.bridge does not import on CPU (megatron/bridge/peft/lora_layers.py imports "
            "transformer_engine), so these facts stand in for the installed library."
        ),
        "sources": {
            "megatron-bridge": {"repo": mb.repo, "tag": mb.tag, "commit": reader.bridge.commit, "path": "src/"},
            "megatron-core": {"repo": mc.repo, "tag": mc.tag, "commit": reader.core.commit, "path": "megatron/"},
        },
        "recipe_module": "megatron.bridge.recipes.nemotronh.nemotron_3_super",
        "config_container": {section: name for section, (_, name) in SECTIONS.items()},
        "classes": classes,
        "functions": functions,
        "scripts": scripts,
        "mixed_precision_presets": _presets(reader),
        # the packed Parquet columns FinetuningDatasetConfig's packed path requires
        "packed_parquet_columns": _constant(reader, "megatron.bridge.data.datasets.packed_parquet", "REQUIRED_COLUMNS"),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    out = HERE / "megatron_bridge.json"
    facts = record(*argv)
    # facts the parser cannot derive (recipe_facts, read by hand and cited) are kept across re-recordings
    previous = json.loads(out.read_text()) if out.is_file() else {}
    for key, value in previous.items():
        facts.setdefault(key, value)
    out.write_text(json.dumps(facts, indent=1, sort_keys=False) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
