"""The deterministic shard plan: which piece of which input each shard covers, and its key.

A shard's key hashes everything that decides its output bytes (stage, shard-affecting settings,
tokenizer hash, the input file's fingerprint and the piece). Outputs and receipts are named by key,
so a rerun of the same config finds its finished shards, and a changed config never trusts them.
The plan hash adds the blend (dataset names, weights, order) on top of the shard keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemotron.data_prep.atomic import sha256_json, write_json_atomic
from nemotron.data_prep.sources import Dataset, Piece, split_file

KEY_CHARS = 20


@dataclass(frozen=True)
class Shard:
    index: int
    key: str
    dataset: int  # index into Plan.datasets
    piece: Piece


@dataclass(frozen=True)
class Plan:
    stage: str
    settings: dict[str, Any]
    datasets: tuple[Dataset, ...]
    shards: tuple[Shard, ...]
    hash: str

    @property
    def total_bytes(self) -> int:
        return sum(s.piece.bytes for s in self.shards)

    def to_json(self) -> dict[str, Any]:
        return {
            "plan_hash": self.hash,
            "stage": self.stage,
            "settings": self.settings,
            "datasets": [
                {"name": d.name, "weight": d.weight, "pattern": d.pattern, "files": len(d.files)} for d in self.datasets
            ],
            "shards": [
                {"index": s.index, "key": s.key, "dataset": self.datasets[s.dataset].name} | s.piece.describe()
                for s in self.shards
            ],
        }

    def write(self, output_dir: Path) -> None:
        write_json_atomic(output_dir / "plan.json", self.to_json())


def build_plan(stage: str, datasets: list[Dataset], settings: dict[str, Any], shard_size_mb: float) -> Plan:
    """Cut every input file into pieces of about ``shard_size_mb`` and key each one."""
    target = max(1, int(shard_size_mb * (1 << 20)))
    settings_hash = sha256_json({"stage": stage, "settings": settings})
    shards: list[Shard] = []
    for ds in datasets:
        for file in ds.files:
            for piece in split_file(file, target):
                key = sha256_json({"settings": settings_hash, "piece": piece.describe()})[:KEY_CHARS]
                shards.append(Shard(len(shards), key, ds.index, piece))
    blend = [{"name": d.name, "weight": d.weight} for d in datasets]
    plan_hash = sha256_json({"settings": settings_hash, "blend": blend, "shards": [s.key for s in shards]})
    return Plan(stage, settings, tuple(datasets), tuple(shards), plan_hash)
