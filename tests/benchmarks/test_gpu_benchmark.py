"""benchmarks/gpu.py: exits cleanly without CUDA; its code paths run at toy sizes on a CPU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def _gpu_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_benchmark"] = module
    spec.loader.exec_module(module)
    return module


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
