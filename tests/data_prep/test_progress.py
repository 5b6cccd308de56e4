"""Progress output: a rich bar on a terminal, plain periodic lines (Slurm logs) otherwise."""

from __future__ import annotations

import io
import sys

from nemotron.data_prep.progress import Progress


def test_plain_lines_when_not_a_tty(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = Progress("data prep pretrain", total_bytes=1000, total_shards=4, interval=0.0)
    bar.update(250, docs=10, tokens=5_000_000, shards=1)
    bar.close()
    lines = sys.stderr.getvalue().splitlines()
    assert len(lines) == 2  # one periodic line (interval 0) + the final summary
    assert "1/4 shards" in lines[0] and "25.0% of input" in lines[0] and "5.0M tokens" in lines[0]
    assert "tok/s" in lines[0] and "ETA" in lines[0]


def test_rich_bar_on_a_tty(monkeypatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    fake = Tty()
    monkeypatch.setattr(sys, "stderr", fake)
    bar = Progress("data prep sft", total_bytes=100, total_shards=2)
    assert bar._rich is not None
    bar.update(100, docs=3, tokens=1234, shards=2)
    bar.close()
    assert "data prep sft" in fake.getvalue() and "tok/s" in fake.getvalue()


def test_untokenized_records_are_rated_by_docs(monkeypatch) -> None:
    """RL prompt prep copies records: no "0 tokens, 0 tok/s" in its log."""
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = Progress("data prep rl", total_bytes=100, total_shards=1, interval=3600)
    bar.update(100, docs=90, tokens=0, shards=1)
    bar.close()
    (line,) = sys.stderr.getvalue().splitlines()
    assert "90 docs (" in line and "tok" not in line
