"""The parser that records Megatron-Bridge facts: required fields, inherited fields, signatures, flags.

The real recording needs git mirrors of Megatron-Bridge and Megatron-LM (a developer step); here the
same parser reads small sources shaped like theirs, so a parser bug cannot silently weaken the
contract tests.
"""

from __future__ import annotations

import importlib.util

from nemotron.paths import RECIPES_DIR

SPEC = importlib.util.spec_from_file_location(
    "record_megatron_bridge", RECIPES_DIR / "super3" / "megatron" / "api_reference" / "record_megatron_bridge.py"
)
recorder = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(recorder)

FILES = {
    "src/megatron/bridge/training/config.py": """
from dataclasses import dataclass, field
from megatron.training.config import TrainingConfig as MTrainTrainingConfig

@dataclass(kw_only=True)
class TrainingConfig(MTrainTrainingConfig):
    check_optimizer_step_success: bool = True
    seq_length: int
    extra: list = field(default_factory=list)
    needed: int = field(metadata={"x": 1})

    @property
    def alias(self):
        return 1

    @alias.setter
    def alias(self, value):
        pass

def finetune(config, forward_step_func, callbacks=None, *, strict: bool = False, **kwargs):
    pass
""",
    "megatron/training/config/__init__.py": "from .training_config import TrainingConfig\n",
    "megatron/training/config/training_config.py": """
from dataclasses import dataclass
@dataclass
class TrainingConfig:
    train_iters: int | None = None
    micro_batch_size: int
""",
    "examples/peft/merge_lora.py": """
import argparse
p = argparse.ArgumentParser()
p.add_argument("--lora-checkpoint", required=True)
p.add_argument("--tp", type=int, default=1)
""",
}


class FakeSource:
    def __init__(self, root: str) -> None:
        self.root, self.tag, self.commit = root, "v0", "0" * 40

    def read(self, path: str) -> str | None:
        return FILES.get(path)


def test_fields_follow_bases_and_mark_required_ones():
    reader = recorder.Reader(FakeSource("src/"), FakeSource(""))
    fields, files = reader.fields("megatron.bridge.training.config", "TrainingConfig")
    required = {name for name, f in fields.items() if f["required"]}
    assert required == {"micro_batch_size", "seq_length", "needed"}
    assert {"train_iters", "check_optimizer_step_success", "extra", "alias"} <= set(fields)
    assert files == ["v0:src/megatron/bridge/training/config.py", "v0:megatron/training/config/training_config.py"]


def test_signatures_and_script_flags():
    reader = recorder.Reader(FakeSource("src/"), FakeSource(""))
    params, where = reader.signature("megatron.bridge.training.config", "finetune")
    assert params == {
        "config": "required",
        "forward_step_func": "required",
        "callbacks": "optional",
        "strict": "optional",
        "**kwargs": "optional",
    }
    assert recorder._script_flags(FILES["examples/peft/merge_lora.py"]) == {
        "--lora-checkpoint": "required",
        "--tp": "optional",
    }
