"""Deterministic train/valid/test assignment by content hash.

A record's split depends only on its content and the seed: the same document lands in the same
split however the input is sharded, and exact duplicates can never straddle train and valid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable


def make_assigner(seed: int, fractions: dict[str, float]) -> Callable[[str], str]:
    """``fractions`` maps non-train split names to their share; the rest goes to ``train``."""
    active = [(name, frac) for name, frac in fractions.items() if frac > 0]
    if not active:
        return lambda _text: "train"
    key = seed.to_bytes(8, "little", signed=True)
    bounds: list[tuple[float, str]] = []
    acc = 0.0
    for name, frac in active:
        acc += frac
        bounds.append((acc, name))
    scale = float(1 << 64)

    def assign(text: str) -> str:
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8, key=key).digest()
        u = int.from_bytes(digest, "little") / scale
        for bound, name in bounds:
            if u < bound:
                return name
        return "train"

    return assign


def split_names(fractions: dict[str, float]) -> list[str]:
    """Splits that exist for these fractions, train first."""
    return ["train", *(name for name, frac in fractions.items() if frac > 0)]
