"""Execution tests: NeMo-Run shells out through invoke, which reads stdin; pytest's stdin raises."""

from __future__ import annotations

import os
import sys

import pytest


@pytest.fixture(autouse=True)
def devnull_stdin(monkeypatch: pytest.MonkeyPatch):
    with open(os.devnull) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        yield
