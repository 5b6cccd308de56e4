"""Fixtures for the tiny (CPU) backend tests: a small byte-level BPE tokenizer, the tiny model
section, and writers for the data formats data prep produces (Megatron bin/idx + blend.json, packed
SFT Parquet), so these tests do not depend on data prep or /work/shared/data.
"""

from __future__ import annotations

import json
import pathlib
import random
import struct
import sys
import types

import numpy as np
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "recipes"))

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]


def addition_chats(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """Single-digit addition chats phrased like the RL prompts: `What is A + B?` -> `C`."""
    rng = random.Random(seed)
    chats = []
    for _ in range(n):
        a, b = rng.randrange(10), rng.randrange(10)
        chats.append([{"role": "user", "content": f"What is {a} + {b}?"}, {"role": "assistant", "content": str(a + b)}])
    return chats


def prose_docs(n: int, seed: int = 0) -> list[str]:
    """A small repetitive corpus (so a tiny model's loss drops quickly)."""
    rng = random.Random(seed)
    subjects = ["the cat", "a dog", "the bird", "my friend", "the teacher"]
    verbs = ["sees", "likes", "finds", "helps", "follows"]
    objects = ["the ball", "a tree", "the river", "a house", "the garden"]
    docs = []
    for _ in range(n):
        k = rng.randrange(3, 8)
        docs.append(" ".join(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}." for _ in range(k)))
    return docs


def train_tokenizer(texts: list[str], path: pathlib.Path, vocab_size: int = 400) -> pathlib.Path:
    """Train a byte-level BPE with the tiny special tokens and save it as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def write_indexed(prefix: pathlib.Path, docs: list[list[int]], dtype=np.uint16) -> None:
    """Megatron bin/idx (DESIGN.md): one sequence per document, each ending in EOD already."""
    code = {np.uint16: 8, np.int32: 4}[dtype]
    prefix.parent.mkdir(parents=True, exist_ok=True)
    arrays = [np.asarray(d, dtype=dtype) for d in docs]
    with open(f"{prefix}.bin", "wb") as f:
        for a in arrays:
            f.write(a.tobytes())
    lengths = np.array([len(a) for a in arrays], dtype=np.int32)
    pointers = np.concatenate([[0], np.cumsum(lengths.astype(np.int64))[:-1]]) * np.dtype(dtype).itemsize
    doc_idx = np.arange(len(arrays) + 1, dtype=np.int64)
    with open(f"{prefix}.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", code))
        f.write(struct.pack("<Q", len(arrays)))
        f.write(struct.pack("<Q", len(arrays) + 1))
        f.write(lengths.tobytes())
        f.write(pointers.astype(np.int64).tobytes())
        f.write(doc_idx.tobytes())


def make_pretrain_data(root: pathlib.Path, tokenizer_file: pathlib.Path, texts: list[str], valid: list[str]):
    """A pretrain-data artifact: two train shards (weights 0.7/0.3) and one valid shard."""
    from super3.tiny import model as tiny_model

    tok = tiny_model.load_tokenizer(tokenizer_file)
    eod = tok.convert_tokens_to_ids("<|endoftext|>")

    def ids(t: str) -> list[int]:
        return [*tok(t, add_special_tokens=False)["input_ids"], eod]

    half = len(texts) // 2
    write_indexed(root / "train_a", [ids(t) for t in texts[:half]])
    write_indexed(root / "train_b", [ids(t) for t in texts[half:]])
    write_indexed(root / "valid", [ids(t) for t in valid])
    blend = {"train": [0.7, "train_a", 0.3, str(root / "train_b")], "valid": [1.0, "valid"], "test": [1.0, "valid"]}
    (root / "blend.json").write_text(json.dumps(blend))
    meta = {"tokenizer": {"path": str(tokenizer_file), "vocab_size": len(tok), "eod_id": eod}}
    return types.SimpleNamespace(path=root, metadata=meta)


def render_chat(tok, chat: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Token ids + token-aligned mask (1 on assistant content, its <|im_end|> and the newline after
    it: the reference recipe's convention) in the tiny chat format."""
    ids: list[int] = []
    mask: list[int] = []
    for turn in chat:
        head = tok(f"<|im_start|>{turn['role']}\n", add_special_tokens=False)["input_ids"]
        body = tok(f"{turn['content']}<|im_end|>\n", add_special_tokens=False)["input_ids"]
        on = 1 if turn["role"] == "assistant" else 0
        ids += head + body
        mask += [0] * len(head) + [on] * len(body)
    return ids, mask


def make_sft_data(root: pathlib.Path, tokenizer_file: pathlib.Path, chats, pack_size: int = 128, rows_per_file=50):
    """An sft-data artifact: greedy-packed rows (input_ids, loss_mask, seq_start_id) in Parquet, the
    mask stored label-aligned as data prep writes it (``packed_format``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from super3.tiny import model as tiny_model

    tok = tiny_model.load_tokenizer(tokenizer_file)
    rows: list[dict] = []
    cur: dict = {"input_ids": [], "loss_mask": [], "seq_start_id": []}
    for chat in chats:
        ids, mask = render_chat(tok, chat)
        ids, mask = ids[:pack_size], mask[:pack_size]
        if len(cur["input_ids"]) + len(ids) > pack_size:
            rows.append(cur)
            cur = {"input_ids": [], "loss_mask": [], "seq_start_id": []}
        cur["seq_start_id"].append(len(cur["input_ids"]))
        cur["input_ids"] += ids
        cur["loss_mask"] += [*mask[1:], 0]  # label-aligned: entry j gates token j+1
    if cur["input_ids"]:
        rows.append(cur)
    root.mkdir(parents=True, exist_ok=True)
    schema = pa.schema(
        [
            ("input_ids", pa.list_(pa.int32())),
            ("loss_mask", pa.list_(pa.int8())),
            ("seq_start_id", pa.list_(pa.int32())),
        ]
    )
    for i in range(0, len(rows), rows_per_file):
        pq.write_table(
            pa.Table.from_pylist(rows[i : i + rows_per_file], schema=schema), root / f"shard_{i:06d}.parquet"
        )
    meta = {"tokenizer": {"path": str(tokenizer_file), "vocab_size": len(tok)}, "pack_size": pack_size}
    return types.SimpleNamespace(path=root, metadata=meta)


@pytest.fixture
def one_torch_thread() -> None:
    """Torch on one thread: the machine's cores are shared by everyone's tests."""
    import torch

    torch.set_num_threads(1)


def torch_module_marks() -> list:
    """``pytestmark`` of modules that run torch/ModelOpt/lm-eval in process: one torch thread, and the
    User/Deprecation warnings those libraries raise on import and use silenced."""
    return [
        pytest.mark.filterwarnings("ignore::UserWarning"),
        pytest.mark.filterwarnings("ignore::DeprecationWarning"),
        pytest.mark.usefixtures("one_torch_thread"),
    ]


@pytest.fixture(scope="session")
def tiny_tokenizer_file(tmp_path_factory) -> pathlib.Path:
    """tokenizer.json trained on the fixture corpora (prose + addition chats)."""
    texts = prose_docs(200, seed=1)
    texts += [f"<|im_start|>user\nWhat is {a} + {b}?<|im_end|>\n" for a in range(10) for b in range(10)]
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok") / "tokenizer.json")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_file):
    from super3.tiny import model as tiny_model

    return tiny_model.load_tokenizer(tiny_tokenizer_file)


def load_tiny_yaml(stage: str) -> dict:
    return yaml.safe_load((REPO / "configs" / "super3" / stage / "tiny.yaml").read_text())


@pytest.fixture(scope="session")
def tiny_model_section() -> dict:
    """The `model:` section of configs/super3/pretrain/tiny.yaml."""
    return load_tiny_yaml("pretrain")["model"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model_section, tiny_tokenizer):
    """An untrained tiny NemotronH saved with its tokenizer (a model artifact directory)."""
    from super3.tiny import model as tiny_model

    tiny_model.set_threads()
    m = tiny_model.new_model(tiny_model_section, seed=0, tokenizer=tiny_tokenizer)
    return tiny_model.save_model(m, tiny_tokenizer, tmp_path_factory.mktemp("model") / "hf")
