"""CPU-time bounds that mean the same on a slow or shared machine as on a reference core.

A no-op `dvc repro` is pure Python, most of it DVC parsing dvc.yaml, dvc.lock and the params
file with a pure-Python YAML reader. "Under 5 s" holds for a core that runs `_loop` in
REFERENCE_LOOP_S CPU seconds (Python 3.11 on a recent desktop core); a slower core, or one
sharing its caches with busy neighbours, gets more in proportion (never less).
"""

from __future__ import annotations

import time

REFERENCE_LOOP_S = 0.6
NOOP_REPRO_CPU_S = 5.0


def _loop() -> int:
    return sum(i * i for i in range(10**7))


def machine_factor() -> float:
    """How much slower this core runs pure Python than the reference (at least 1)."""
    began = time.process_time()
    _loop()
    return max(1.0, (time.process_time() - began) / REFERENCE_LOOP_S)
