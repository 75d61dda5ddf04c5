"""dvc.yaml generated from the Snakefile: one stage per job, params from the config file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from prrmse import dvcgen
from prrmse.errors import PrrmseError

ROOT = Path(__file__).resolve().parents[1]
TINY = Path("tests/workflow/tiny.yaml")
# flags a verb may receive: paths, identifiers from wildcards, threads; never a config value
ALLOWED_FLAGS = {
    "--config", "--dataset", "--model", "--data", "--out", "--threads", "--target", "--source",
    "--models", "--sweep", "--rmse", "--number", "--inputs", "--kind", "--caption", "--plan", "--run",
    "--runs", "--ideal",
}  # fmt: skip


@pytest.fixture(scope="module")
def jobs() -> list[dvcgen.Job]:
    return dvcgen.snakemake_jobs(Path("Snakefile"), TINY, ROOT)


@pytest.fixture(scope="module")
def stages() -> dict:
    return dvcgen.generate_dvc_yaml(Path("Snakefile"), TINY, ROOT)["stages"]


@pytest.fixture(scope="module")
def tiny_config() -> dict:
    return yaml.safe_load((ROOT / TINY).read_text())


def _outs(stage: dict) -> list[str]:
    paths = list(stage.get("outs", [])) + list(stage.get("metrics", []))
    paths += [next(iter(p)) if isinstance(p, dict) else p for p in stage.get("plots", [])]
    return paths


def test_one_stage_per_job(jobs, stages):
    assert len(stages) == len(jobs)
    assert {dvcgen.stage_name(job) for job in jobs} == set(stages)
    # the tiny config keeps the whole study: every kind of job is there
    assert {job.rule for job in jobs} >= {"phantoms", "prepare", "train", "sweep", "bnstats", "rmse_pair",
                                          "rmse_group", "plan", "figure", "table_baseline", "table_plans", "reuse", "table1",
                                          "rmse_to_ideal", "figure_reuse"}  # fmt: skip


def test_job_count_matches_snakemake_cli(stages):
    """An independent count: `snakemake -n --forceall` lists the same jobs (plus `all`)."""
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--configfile", str(TINY), "--quiet", "rules"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.MULTILINE))
    total = int(counts.pop("total"))
    assert total - int(counts.get("all", 0)) == len(stages)


def test_stage_names_are_valid_and_readable(stages):
    from dvc.stage.utils import is_valid_name

    assert all(is_valid_name(name) for name in stages)
    assert "train--unet-seg-acdc-s1" in stages
    assert "sweep--pspnet-seg-acdc-s1__pspnet-auto-acdc-s1" in stages
    assert "figure--03" in stages and "table_baseline" in stages


def test_every_output_has_one_stage(stages):
    outs = [path for stage in stages.values() for path in _outs(stage)]
    assert len(outs) == len(set(outs))


def test_deps_are_outputs_files_or_code(stages):
    outs = {path for stage in stages.values() for path in _outs(stage)}
    for name, stage in stages.items():
        assert dvcgen.CODE_DEP in stage["deps"], name
        for dep in stage["deps"]:
            assert dep in outs or dep == dvcgen.CODE_DEP or (ROOT / dep).exists(), (name, dep)
            assert not Path(dep).is_absolute(), (name, dep)


def test_dvc_edges_match_snakemake_dependencies(jobs, stages):
    producer = {path: name for name, stage in stages.items() for path in _outs(stage)}
    for job in jobs:
        upstream = {
            producer[d].split("--")[0]
            for d in stages[dvcgen.stage_name(job)]["deps"]
            if d in producer
        }
        assert upstream == set(job.upstream), job.rule


def test_params_keys_exist_in_the_config_file(stages, tiny_config):
    expected = {"phantoms": {"phantoms.seed"}, "prepare": {"prepare"}, "train": {"train"},
                "sweep": {"analysis.sweep"}, "plan": {"analysis.plan.rule", "analysis.plan.max_rmse_w"},
                "reuse": {"train", "networks.pspnet"}}  # fmt: skip
    for name, stage in stages.items():
        rule = name.split("--")[0]
        params = stage.get("params", [])
        if rule not in expected:
            assert not params, name
            continue
        assert len(params) == 1 and list(params[0]) == [TINY.as_posix()], name
        keys = params[0][TINY.as_posix()]
        assert expected[rule] <= set(keys), name
        assert keys == sorted(keys)
        for key in keys:
            assert dvcgen._get(tiny_config, key)[0], (name, key)
    assert stages["train--pspnet-seg-t1-s1"]["params"][0][TINY.as_posix()] == [
        "networks.pspnet",
        "train",
    ]
    assert stages["phantoms--rvsc"]["params"][0][TINY.as_posix()] == [
        "phantoms.rvsc",
        "phantoms.seed",
    ]


def test_commands_pass_only_the_config_file_and_paths(stages, tiny_config):
    for name, stage in stages.items():
        cmd = stage["cmd"]
        assert cmd.startswith("mkdir -p "), name
        verb, args = dvcgen.parse_verb(cmd)
        assert verb is not None, name
        assert set(args) <= ALLOWED_FLAGS, (name, set(args) - ALLOWED_FLAGS)
        if verb in dvcgen.VERB_PARAMS:
            assert args["--config"] == [TINY.as_posix()], name
        assert str(ROOT) not in cmd, name  # portable: no absolute paths
    lr = str(tiny_config["train"]["lr"])
    assert not any(lr in stage["cmd"] for stage in stages.values())


def test_outs_metrics_plots_and_logs(stages):
    train = stages["train--unet-seg-acdc-s1"]
    assert train["outs"] == [
        "logs/train/unet-seg-acdc-s1.log",
        "results/models/unet-seg-acdc-s1/model.safetensors",
    ]
    assert train["metrics"] == ["results/models/unet-seg-acdc-s1/metrics.json"]
    assert train["plots"] == [{"results/models/unet-seg-acdc-s1/history.csv": {"x": "epoch"}}]
    assert stages["phantoms--acdc"]["outs"] == ["data/raw/acdc", "logs/phantoms/acdc.log"]
    assert "mkdir -p data/raw logs/phantoms &&" in stages["phantoms--acdc"]["cmd"]
    for stage in stages.values():
        assert stage["deps"] == sorted(stage["deps"])
        assert stage["outs"] == sorted(stage["outs"])


def test_regeneration_is_byte_identical(stages):
    again = dvcgen.generate_dvc_yaml(Path("Snakefile"), TINY, ROOT)
    first = dvcgen.render_dvc_yaml({"stages": stages}, TINY)
    assert dvcgen.render_dvc_yaml(again, TINY) == first
    assert list(yaml.safe_load(first)["stages"]) == sorted(stages)


def test_committed_dvc_yaml_is_in_sync():
    if not (ROOT / "dvc.yaml").exists():
        pytest.skip("dvc.yaml not generated yet (prrmse dvc-sync)")
    diff = dvcgen.check_dvc_yaml(Path("Snakefile"), Path("config/config.yaml"), ROOT)
    assert not diff, "dvc.yaml is out of date; run `prrmse dvc-sync`:\n" + "\n".join(diff[:40])


def test_verb_reading_config_must_be_in_the_table():
    job = dvcgen.Job(
        "reuse_x", [], [], ["out"], set(), [], "prrmse newverb --config c.yaml --out out"
    )
    with pytest.raises(PrrmseError, match="VERB_PARAMS"):
        dvcgen.job_params(job, {}, "c.yaml")
    other = dvcgen.Job(
        "t", [], [], ["o"], set(), [], "prrmse train --config other.yaml --model unet-seg-acdc-s1"
    )
    with pytest.raises(PrrmseError, match="other.yaml"):
        dvcgen.job_params(other, {"train": {}}, "c.yaml")
    bare = dvcgen.Job(
        "t", [], [], ["o"], set(), [], "prrmse train --model unet-seg-acdc-s1 --out o"
    )
    with pytest.raises(PrrmseError, match="no --config"):
        dvcgen.job_params(bare, {}, "c.yaml")


def test_keys_absent_from_the_config_file_are_tracked_through_an_ancestor():
    cmd = "prrmse train --config c.yaml --model unet-seg-acdc-s1 > l 2>&1"
    job = dvcgen.Job("train", [], [], ["o"], set(), [], cmd)
    assert dvcgen.job_params(job, {"train": {"lr": 1}}, "c.yaml") == ["train"]
    both = {"train": {}, "networks": {"unet": {}}}
    assert dvcgen.job_params(job, both, "c.yaml") == ["networks.unet", "train"]
    # networks.unet absent: `networks` stands in for it
    assert dvcgen.job_params(job, {"train": {}, "networks": {"x": 1}}, "c.yaml") == [
        "networks",
        "train",
    ]
    plan = ["analysis.plan.rule", "analysis.plan.max_dice_drop", "analysis.plan.max_rmse_w"]
    assert dvcgen.tracked_keys(plan, {"analysis": {"sweep": {}}}) == ["analysis"]
    assert dvcgen.tracked_keys(plan, {"analysis": {"plan": {"rule": "both"}}}) == ["analysis.plan"]
    assert dvcgen.tracked_keys(plan, {}) == []
    assert dvcgen.tracked_keys(["a", "a.b"], {"a": {"b": 1}}) == ["a"]


def test_parse_verb():
    verb, args = dvcgen.parse_verb(
        "mkdir -p a && prrmse figure --number 03 --inputs a.csv b.csv --out x > l 2>&1"
    )
    assert verb == "figure"
    assert args == {"--number": ["03"], "--inputs": ["a.csv", "b.csv"], "--out": ["x"]}
    assert dvcgen.parse_verb("echo hi") == (None, {})


def test_write_dvc_yaml_and_dvcignore(tmp_path):
    for name in ("Snakefile", "workflow", "config"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, symlinks=True)
        else:
            shutil.copy(src, tmp_path / name)
    (tmp_path / "src").symlink_to(ROOT / "src")
    (tmp_path / "tests/workflow").mkdir(parents=True)
    shutil.copy(ROOT / TINY, tmp_path / TINY)
    path = dvcgen.write_dvc_yaml(Path("Snakefile"), TINY, tmp_path)
    assert path == tmp_path / "dvc.yaml"
    text = path.read_text()
    assert text.startswith("# Generated from the Snakefile's jobs")
    assert "__pycache__/" in (tmp_path / ".dvcignore").read_text().splitlines()
    assert dvcgen.check_dvc_yaml(Path("Snakefile"), TINY, tmp_path) == []
    path.write_text(text.replace("train--unet-seg-acdc-s1", "train--renamed"))
    assert dvcgen.check_dvc_yaml(Path("Snakefile"), TINY, tmp_path)


def test_snakemake_refuses_config_overrides():
    # (snakemake's own parser already rejects a one-letter key such as x=1)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(TINY), "--config", "lr=0.1"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "--config overrides are not supported" in result.stdout + result.stderr


# --- end to end: a temp copy of the repository, DVC and Snakemake agreeing -------------------


def _copy_repo(dest: Path) -> None:
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if (
            rel in ("dvc.yaml", "dvc.lock")
            or rel.startswith(".dvc/")
            or not (src.exists() or src.is_symlink())
        ):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)


def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.mark.slow
def test_dvc_repro_end_to_end(tmp_path):
    """dvc repro builds the tiny graph, reruns nothing the second time, reruns only the
    stages below a changed param, and Snakemake then agrees nothing needs to run."""
    repo = tmp_path / "repo"
    _copy_repo(repo)
    env = {**os.environ, "PYTHONPATH": str(repo / "src"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    dvc = [sys.executable, "-m", "dvc"]
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    _run(["git", "init", "-q", "."], repo, env)
    _run(dvc + ["init", "-q"], repo, env)
    dvcgen.write_dvc_yaml(Path("Snakefile"), TINY, repo)
    _run(["git", "add", "-A"], repo, env)
    _run(git + ["commit", "-qm", "copy"], repo, env)

    _run(dvc + ["repro"], repo, env)
    assert dvcgen.dvc_status(repo) == {}
    began = time.perf_counter()
    second = _run(dvc + ["repro"], repo, env)
    seconds = time.perf_counter() - began
    assert "Running stage" not in second.stdout
    assert seconds < 5, f"no-op dvc repro took {seconds:.1f} s"

    # a UNet option changes: exactly the UNet models and what is made from them rerun
    config = repo / TINY
    config.write_text(config.read_text().replace("options: {width: 4}", "options: {width: 6}"))
    changed = set(dvcgen.dvc_status(repo))
    assert changed == {"train--unet-seg-acdc-s1", "train--unet-auto-acdc-s1"}
    rerun = _run(dvc + ["repro"], repo, env).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", rerun))
    assert ran == {"train--unet-seg-acdc-s1", "train--unet-auto-acdc-s1", "sweep--unet-seg-acdc-s1__unet-auto-acdc-s1",
                   "bnstats--unet-seg-acdc-s1__unet-auto-acdc-s1", "rmse_pair--unet-seg-acdc-s1__unet-auto-acdc-s1",
                   "figure--03", "figure--04", "figure--05", "figure--06", "table_baseline"}  # fmt: skip
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert (
        lock["train--unet-seg-acdc-s1"]["params"][TINY.as_posix()]["networks.unet"]["options"][
            "width"
        ]
        == 6
    )

    # Snakemake agrees after the sync (its metadata never saw these runs)
    dvcgen.sync_snakemake_after_dvc(repo, TINY)
    dry = _run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(TINY)], repo, env)
    assert "Nothing to be done" in dry.stdout + dry.stderr

    # and lineage traces a figure through dvc.lock, every hash still matching
    from prrmse.lineage import lineage

    tree = lineage(Path("results/figures/fig05.png"), root=repo)
    assert tree["trusted"] and tree["stage"]["name"] == "figure--05"


def test_register_adds_the_dvc_sync_verb():
    import argparse

    parser = argparse.ArgumentParser()
    dvcgen.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["dvc-sync", "--config", str(TINY), "--check"])
    assert args.handler is dvcgen.run_dvc_sync and args.check and not args.touch_snakemake
    assert args.config == TINY and args.snakefile == Path("Snakefile")
