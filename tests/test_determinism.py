"""Same answer twice: two uninterrupted runs of the tiny config, in two copies of the repository
at different absolute paths, give the same bytes for every product. The second runs under
`prrmse serve`, as `make demo` does: jobs forked from one warm process compute what jobs
started afresh compute.

Compared: every file under data/ (raw phantoms, processed arrays) and results/ (checkpoints,
histories, metrics, sweeps, BN stats, RMSE tables, plans, tables as CSV/MD/TEX, figures as PNG
and PDF), byte for byte: no product records where the repository lies.
"""

from __future__ import annotations

import pytest

from tests.e2e_runs import compare_hashes, full_run, leftovers, reference_run

# every kind of product the workflow makes must be among the compared files
EXPECTED_KINDS = (".safetensors", ".csv", ".json", ".md", ".tex", ".png", ".pdf", ".npy")


@pytest.mark.slow
def test_two_runs_give_identical_bytes():
    first = reference_run()
    second = full_run("determinism", served=True)
    assert first.repo != second.repo
    assert not leftovers(second.repo), leftovers(second.repo)
    problems = compare_hashes(first.hashes, second.hashes)
    kinds = {rel[rel.rfind(".") :] for rel in first.hashes}
    print(
        f"\ndeterminism: {len(first.hashes)} files compared by sha256 "
        f"({sum(rel.startswith('results/') for rel in first.hashes)} under results/); "
        f"runs took {first.seconds:.0f} s and {second.seconds:.0f} s (the second under prrmse serve)"
    )
    assert set(EXPECTED_KINDS) <= kinds, set(EXPECTED_KINDS) - kinds
    assert not problems, "the two runs differ:\n" + "\n".join(problems)
