"""benchmarks/gpu.py: exits cleanly without CUDA; its code paths run at toy sizes on a CPU."""

from __future__ import annotations

import pytest
import torch

from tests.benchmarks.scripts import load_script


def _gpu_benchmark():
    return load_script("gpu")


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _gpu_benchmark().main([]) == 0
    assert "no CUDA device here; nothing measured" in capsys.readouterr().out


@pytest.mark.slow
def test_smoke_sizes_run_every_variant_on_the_cpu(capsys):
    assert _gpu_benchmark().main(["--smoke"]) == 0
    out = capsys.readouterr().out
    for line in ("naive (baseline)", "prefix reuse, exact", "bf16 + channels_last"):
        assert line in out
    assert out.count("prrmse train fp32") == 2  # both networks
    # the exact prefix-reuse rows are the naive sweep's
    exact = next(line for line in out.splitlines() if "prefix reuse, exact" in line)
    assert exact.endswith("max |Dice - naive| 0.0e+00")
