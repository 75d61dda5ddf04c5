"""The reuse experiment's run list, from the demo config (16 trainings a seed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prrmse.core import study
from prrmse.core.config import load_config
from prrmse.core.naming import parse_run_name

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_config() -> dict:
    return load_config(ROOT / "config/config.yaml")


def test_reuse_runs_are_scratch_sources_by_mode_then_selffer(demo_config):
    runs = study.reuse_runs(demo_config, 2)
    assert len(runs) == 16  # 2 subsets x (scratch + 3 sources x 2 modes + selffer)
    assert runs[:4] == [
        "pspnet-seg-acdc-n10-s2",
        "pspnet-seg-acdc-n10-s2-freeze-from-pspnet-seg-t1",
        "pspnet-seg-acdc-n10-s2-finetune-from-pspnet-seg-t1",
        "pspnet-seg-acdc-n10-s2-freeze-from-pspnet-auto-t1",
    ]
    assert runs[7] == "pspnet-seg-acdc-n10-s2-selffer-from-pspnet-seg-acdc"
    assert runs[8] == "pspnet-seg-acdc-n50-s2"
    specs = [parse_run_name(run) for run in runs]
    assert {spec.model.seed for spec in specs} == {2}
    assert [spec.mode for spec in specs].count("selffer") == 2


def test_without_selffer_there_is_no_control(demo_config):
    config = {**demo_config, "reuse": {**demo_config["reuse"], "selffer": False}}
    assert len(study.reuse_runs(config, 1)) == 14  # the paper's 14 runs a seed


def test_figure_runs_leave_out_the_ideal_and_fig14_keeps_one_source(demo_config):
    ideal = study.ideal_run(demo_config, 1)
    assert ideal == "pspnet-seg-acdc-n50-s1-finetune-from-pspnet-auto-t1"
    fig13 = study.figure_runs(demo_config, 13, 1)
    assert ideal not in fig13 and len(fig13) == 15
    fig14 = study.figure_runs(demo_config, 14, 1)
    assert fig14 and all(run.endswith("-from-pspnet-seg-rvsc") for run in fig14)
    with pytest.raises(ValueError, match="Fig. 5"):
        study.figure_runs(demo_config, 5, 1)


def test_selffer_follows_the_ideal_sources_plan_unless_told(demo_config):
    assert study.selffer_plan_source(demo_config) == "pspnet-auto-t1"
    config = {**demo_config, "reuse": {**demo_config["reuse"], "selffer_plan": "pspnet-seg-t1"}}
    assert study.selffer_plan_source(config) == "pspnet-seg-t1"
    assert study.run_folder("pspnet-seg-acdc-n10-s1") == "models"
    assert study.run_folder("pspnet-seg-acdc-n10-s1-freeze-from-pspnet-seg-t1") == "reuse"
