"""Regenerate the tiny fixtures: corpus.jsonl, chats.jsonl, tokenizer.json (+ tokenizer_config.json).

    python recipes/super3/assets/tiny/make_assets.py

- corpus.jsonl: docstrings of Python standard-library modules (PSF license), one document each.
- chats.jsonl: synthetic, seeded multi-turn conversations. About half the turns are single-digit
  additions phrased exactly ``What is A + B?`` -> ``C`` (the prompt the tiny RL stage uses, so the
  tiny model learns the answer format in SFT), mixed with short echo / fact / counting tasks.
- tokenizer.json: a byte-level BPE (HF ``tokenizers``, 4096 ids) trained on both, with special
  tokens ``<|endoftext|>`` (EOD), ``<|im_start|>``, ``<|im_end|>``, ``<pad>``.
- chat_template.jinja is hand-written (not generated): the tiny chat template of Nemotron 3's shape;
  transformers and data prep both read it from this directory.
The committed files are the output of this script (Python 3.11 docstrings); the tests only read them.
"""

from __future__ import annotations

import importlib
import inspect
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS_BYTES = 400_000
NUM_CHATS = 2000
VOCAB_SIZE = 4096
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
MODULES = [
    "abc",
    "argparse",
    "array",
    "ast",
    "base64",
    "bisect",
    "calendar",
    "collections",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "enum",
    "fractions",
    "functools",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "html",
    "inspect",
    "io",
    "itertools",
    "json",
    "logging",
    "math",
    "operator",
    "pathlib",
    "pickle",
    "pprint",
    "queue",
    "random",
    "re",
    "shutil",
    "statistics",
    "string",
    "struct",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "typing",
    "unittest",
    "uuid",
    "warnings",
    "weakref",
    "zipfile",
]

WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "green",
    "quick",
    "small",
    "bright",
    "window",
    "garden",
    "music",
    "paper",
    "light",
    "north",
    "winter",
    "orange",
    "silver",
    "table",
    "happy",
    "yellow",
    "ocean",
    "forest",
    "little",
    "candle",
    "purple",
    "rabbit",
    "summer",
    "planet",
    "gentle",
]
FACTS = [
    ("What color is the sky on a clear day?", "Blue."),
    ("How many days are in a week?", "7"),
    ("What is the opposite of hot?", "Cold."),
    ("How many legs does a cat have?", "4"),
    ("What do bees make?", "Honey."),
    ("What is the first letter of the alphabet?", "A"),
    ("How many hours are in a day?", "24"),
    ("What is frozen water called?", "Ice."),
    ("Which animal says moo?", "A cow."),
    ("What is the opposite of up?", "Down."),
]
SYSTEM = ["You are a helpful assistant.", "Answer briefly.", "You are a careful calculator."]


def _members(name: str, module: object) -> list[tuple[str, object]]:
    """The module, its public classes/functions, and the public methods of those classes."""
    items: list[tuple[str, object]] = [(name, module)]
    for attr in sorted(dir(module)):
        obj = getattr(module, attr)
        if attr.startswith("_") or getattr(obj, "__module__", None) != name:
            continue
        if inspect.isfunction(obj):
            items.append((f"{name}.{attr}", obj))
        elif inspect.isclass(obj):
            items.append((f"{name}.{attr}", obj))
            for meth in sorted(vars(obj)):
                if not meth.startswith("_") and inspect.isfunction(vars(obj)[meth]):
                    items.append((f"{name}.{attr}.{meth}", vars(obj)[meth]))
    return items


def corpus_docs() -> list[str]:
    docs: list[str] = []
    total = 0
    for name in MODULES:
        for title, obj in _members(name, importlib.import_module(name)):
            doc = inspect.getdoc(obj)
            if not doc or len(doc) < 80:
                continue
            text = f"{title}\n\n{doc}"
            docs.append(text)
            total += len(text.encode())
            if total >= CORPUS_BYTES:
                return docs
    return docs


def addition(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randrange(10), rng.randrange(10)
    return f"What is {a} + {b}?", str(a + b)


def echo(rng: random.Random) -> tuple[str, str]:
    phrase = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
    return f"Repeat after me: {phrase}", phrase


def fact(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FACTS)


def count(rng: random.Random) -> tuple[str, str]:
    n = rng.randrange(100)
    return f"What number comes after {n}?", str(n + 1)


def shout(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    return f"Write {word} in capital letters.", word.upper()


TASKS = [(addition, 50), (echo, 20), (fact, 12), (count, 12), (shout, 6)]


def chats(rng: random.Random) -> list[dict]:
    makers = [m for m, w in TASKS for _ in range(w)]
    out = []
    for _ in range(NUM_CHATS):
        messages = []
        if rng.random() < 0.2:
            messages.append({"role": "system", "content": rng.choice(SYSTEM)})
        for _ in range(rng.randint(1, 4)):
            question, answer = rng.choice(makers)(rng)
            messages.append({"role": "user", "content": question})
            messages.append({"role": "assistant", "content": answer})
        out.append({"messages": messages})
    return out


def render(messages: list[dict]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def train_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def main() -> None:
    rng = random.Random(20261123)
    docs = corpus_docs()
    with open(HERE / "corpus.jsonl", "w") as fh:
        for doc in docs:
            fh.write(json.dumps({"text": doc}, ensure_ascii=False) + "\n")
    conversations = chats(rng)
    with open(HERE / "chats.jsonl", "w") as fh:
        for conv in conversations:
            fh.write(json.dumps(conv, ensure_ascii=False) + "\n")
    tok = train_tokenizer(docs + [render(c["messages"]) for c in conversations])
    tok.save(str(HERE / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<pad>",
        "model_max_length": 256,
        "clean_up_tokenization_spaces": False,
    }
    (HERE / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")
    print(f"{len(docs)} docs, {len(conversations)} chats, vocab {tok.get_vocab_size()}")


if __name__ == "__main__":
    main()
