"""Known library notices are counted and summarised once; everything else still prints."""

from __future__ import annotations

import logging
import warnings

from nemotron.node import quiet


def test_known_notices_collapse_to_one_line_with_a_count(caplog) -> None:
    quiet.reset()
    quiet.install()
    kernels = logging.getLogger("transformers.integrations.hub_kernels")
    for fn in ("causal_conv1d_fn", "mamba_chunk_scan_combined", "selective_state_update"):
        kernels.warning("`%s` is falling back to its reference PyTorch implementation because ...", fn)
    kernels.warning("something else entirely")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("`torch.jit.script` is deprecated. Please switch to `torch.compile`", FutureWarning, stacklevel=1)
        warnings.warn("an unknown warning", UserWarning, stacklevel=1)
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["something else entirely"]
    lines = quiet.summary_lines()
    assert any(line.startswith("library notice x3: transformers: the optional Mamba kernels") for line in lines)
    assert any(line.startswith("library notice x1: torch: torch.jit.script") for line in lines)
    assert len(lines) == 2  # the unknown warning was shown, not counted
    quiet.reset()
    assert quiet.summary_lines() == []


def test_progress_bars_are_off_in_log_files(capsys) -> None:
    """lm-eval passes disable=False explicitly, which TQDM_DISABLE cannot override."""
    from tqdm import tqdm

    quiet.install()  # pytest's stderr is not a terminal, like a job log
    for _ in tqdm(range(3), disable=False, desc="Running loglikelihood requests"):
        pass
    assert "Running loglikelihood" not in capsys.readouterr().err
