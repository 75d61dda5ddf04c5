"""dvc.yaml generated from the Snakefile: one stage per job, params from the config file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prrmse.cli.main import verb_config_keys
from prrmse.core.config import config_value, load_config, settings_json
from prrmse.core.errors import PrrmseError
from prrmse.repro import dvcgen, record, snakemake_dag, stage_params
from prrmse.repro import lineage as lin
from tests import e2e
from tests.e2e_runs import RecordedRun, recorded_run

ROOT = e2e.ROOT
VERB_KEYS = verb_config_keys()
TINY = e2e.TINY
# flags a verb may receive: paths, identifiers from wildcards, threads; never a config value
ALLOWED_FLAGS = {
    "--package",
    "--config",
    "--dataset",
    "--model",
    "--data",
    "--out",
    "--threads",
    "--same-run-checkpoint",
    "--target-checkpoint",
    "--source-checkpoint",
    "--checkpoints",
    "--sweep",
    "--rmse",
    "--number",
    "--inputs",
    "--kind",
    "--caption",
    "--plan",
    "--run",
    "--run-names",
    "--run-metrics",
    "--run-checkpoints",
    "--ideal-checkpoint",
    "--patients-out",
    "--patients",
    "--floor",
    "--summary",
    "--sweep-summary",
    "--controls-summary",
    "--sweeps",
    "--noise-floor",
    "--plans",
    "--table1",
    "--csv-out",
    "--bnstats",
    "--network",
    "--shared-encoder",
    "--target-model",
    "--source-model",
}


@pytest.fixture(scope="module")
def jobs() -> list[snakemake_dag.Job]:
    return snakemake_dag.snakemake_jobs(Path("Snakefile"), TINY, ROOT)


@pytest.fixture(scope="module")
def content() -> dict:
    return dvcgen.generate_dvc_yaml(Path("Snakefile"), TINY, ROOT, verb_keys=VERB_KEYS)


@pytest.fixture(scope="module")
def stages(content) -> dict:
    return content["stages"]


@pytest.fixture(scope="module")
def tiny_config() -> dict:
    return yaml.safe_load((ROOT / TINY).read_text())


def _outs(stage: dict) -> list[str]:
    paths = list(stage.get("outs", [])) + list(stage.get("metrics", []))
    paths += list(stage.get("plots", []))
    return [next(iter(p)) if isinstance(p, dict) else p for p in paths]


def test_one_stage_per_job(jobs, stages):
    # and one more: the code manifests, which fingerprint what each verb runs
    assert len(stages) == len(jobs) + 1
    assert {dvcgen.stage_name(job) for job in jobs} | {dvcgen.CODE_STAGE} == set(stages)
    # the tiny config keeps the whole study: every kind of job is there
    assert {job.rule for job in jobs} >= {
        "phantoms",
        "prepare",
        "train",
        "sweep",
        "bnstats",
        "rmse_pair",
        "rmse_group",
        "plan",
        "figure",
        "table_baseline",
        "table_plans",
        "reuse",
        "table1",
        "rmse_to_ideal",
        "figure_reuse",
    }


def test_job_count_matches_snakemake_cli(stages):
    """An independent count: `snakemake -n --forceall` lists the same jobs (plus `all`)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--forceall",
            "--configfile",
            str(TINY),
            "--quiet",
            "rules",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout + result.stderr, re.MULTILINE))
    total = int(counts.pop("total"))
    # dvc.yaml's one stage of its own: the code manifests
    assert total - int(counts.get("all", 0)) == len(stages) - 1


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
        code = [d for d in stage["deps"] if d == dvcgen.CODE_DEP or d.startswith("results/code/")]
        assert len(code) == 1, name
        for dep in stage["deps"]:
            assert dep in outs or dep == dvcgen.CODE_DEP or (ROOT / dep).exists(), (name, dep)
            assert not Path(dep).is_absolute(), (name, dep)


def test_dvc_edges_match_snakemake_dependencies(jobs, stages):
    producer = {path: name for name, stage in stages.items() for path in _outs(stage)}
    for job in jobs:
        upstream = {
            producer[d].split("--")[0]
            for d in stages[dvcgen.stage_name(job)]["deps"]
            if d in producer and producer[d] != dvcgen.CODE_STAGE
        }
        assert upstream == set(job.upstream), job.rule


def test_params_keys_exist_in_the_config_file(stages, tiny_config):
    expected = {
        "phantoms": {"phantoms.seed"},
        "prepare": {"prepare"},
        "train": {"train"},
        "sweep": {"analysis.sweep"},
        "plan": {"analysis.plan.rule", "analysis.plan.max_rel_rmse_w", "networks.pspnet"},
        "reuse": {"train", "networks.pspnet", "reuse.frozen_bn"},
        "shared_encoder": {
            "encoders.pspnet",
            "networks.pspnet",
            "train",
            "phantoms.seed",
            "phantoms.acdc",
            "prepare",
        },
        "sweep_controls": {"analysis.sweep", "analysis.controls"},
        "cka": {"analysis.cka", "analysis.sweep.device"},
        "table1": {"analysis.bootstrap"},
        "claims": {"analysis.bootstrap", "analysis.plan"},
        "qc": {"qc"},
        **dict.fromkeys(
            [
                "summarise_sweep",
                "summarise_controls",
                "summarise_pair",
                "summarise_group",
                "summarise_rmse_to_ideal",
            ],
            {"analysis.bootstrap"},
        ),
    }
    for name, stage in stages.items():
        rule = name.split("--")[0]
        params = stage.get("params", [])
        if rule not in expected:
            assert not params, name
            continue
        assert len(params) == 1 and list(params[0]) == [TINY.as_posix()], name
        keys = params[0][TINY.as_posix()]
        # each key is tracked itself, or through an ancestor where the file lacks it
        covered = {k for k in expected[rule] if any(k == t or k.startswith(t + ".") for t in keys)}
        assert covered == expected[rule], (name, expected[rule] - covered)
        assert keys == sorted(keys)
        for key in keys:
            assert config_value(tiny_config, key)[0], (name, key)
    assert stages["train--pspnet-seg-t1-s1"]["params"][0][TINY.as_posix()] == [
        "networks.pspnet",
        "train",
    ]
    assert stages["phantoms--rvsc"]["params"][0][TINY.as_posix()] == [
        "phantoms.rvsc",
        "phantoms.seed",
    ]


def test_each_rule_passes_snakemake_the_values_its_verb_reads(jobs):
    """The rules' `settings` param and dvc.yaml's params come from one declaration: the keys
    each verb reads (prrmse.cli), so Snakemake reruns a job whose values changed as DVC does."""
    merged = load_config(ROOT / TINY)
    checked = 0
    for job in jobs:
        verb, args = snakemake_dag.parse_verb(job.shellcmd)
        if verb not in VERB_KEYS:
            assert job.settings is None, job.rule
            continue
        keys = VERB_KEYS[verb](stage_params.verb_arguments(args))
        assert job.settings == settings_json(merged, keys), job.rule
        assert set(json.loads(job.settings)) == set(keys), job.rule
        checked += 1
    assert checked > 50


def test_commands_pass_only_the_config_file_and_paths(stages, tiny_config):
    for name, stage in stages.items():
        cmd = stage["cmd"]
        assert cmd.startswith("mkdir -p "), name
        verb, args = snakemake_dag.parse_verb(cmd)
        assert verb is not None, name
        assert set(args) <= ALLOWED_FLAGS, (name, set(args) - ALLOWED_FLAGS)
        if verb in VERB_KEYS:
            assert args["--config"] == [TINY.as_posix()], name
        assert str(ROOT) not in cmd, name  # portable: no absolute paths
    lr = str(tiny_config["train"]["lr"])
    assert not any(lr in stage["cmd"] for stage in stages.values())


def test_outs_metrics_plots_and_logs(stages):
    train = stages["train--unet-seg-acdc-s1"]
    assert train["outs"] == [
        "logs/train/unet-seg-acdc-s1.log",
        "results/models/unet-seg-acdc-s1/model.safetensors",
        "results/models/unet-seg-acdc-s1/patients.csv",
    ]
    assert train["metrics"] == ["results/models/unet-seg-acdc-s1/metrics.json"]
    assert train["plots"] == [{"results/models/unet-seg-acdc-s1/history.csv": {"x": "epoch"}}]
    assert stages["phantoms--acdc"]["outs"] == ["data/raw/acdc", "logs/phantoms/acdc.log"]
    assert "mkdir -p data/raw logs/phantoms &&" in stages["phantoms--acdc"]["cmd"]
    for stage in stages.values():
        assert stage["deps"] == sorted(stage["deps"])
        outs = _outs({"outs": stage.get("outs", [])})
        assert outs == sorted(outs)


def test_regeneration_is_byte_identical(content):
    again = dvcgen.generate_dvc_yaml(Path("Snakefile"), TINY, ROOT, verb_keys=VERB_KEYS)
    first = dvcgen.render_dvc_yaml(content, TINY)
    assert dvcgen.render_dvc_yaml(again, TINY) == first
    assert list(yaml.safe_load(first)["stages"]) == sorted(content["stages"])


def test_figures_are_image_plots_and_table1_a_metrics_file(content):
    """Top level: every PNG a job writes is a plot (`dvc plots show`), Table 1's JSON of mean
    Dice per row a metrics file (`dvc metrics show`); both remain outs of their stages."""
    outs = {out for stage in content["stages"].values() for out in _outs(stage)}
    assert content["metrics"] == ["results/tables/table1-metrics.json"]
    assert "results/figures/fig03.png" in content["plots"]
    assert content["plots"] == sorted(content["plots"])
    assert all(p.endswith(".png") for p in content["plots"])
    assert set(content["plots"]) == {o for o in outs if o.endswith(".png")}
    assert set(content["metrics"]) <= outs
    assert list(content) == ["stages", "metrics", "plots"]


def test_committed_dvc_yaml_is_in_sync():
    if not (ROOT / "dvc.yaml").exists():
        pytest.skip("dvc.yaml not generated yet (prrmse dvc-sync)")
    diff = dvcgen.check_dvc_yaml(
        Path("Snakefile"), Path("config/config.yaml"), ROOT, verb_keys=VERB_KEYS
    )
    assert not diff, "dvc.yaml is out of date; run `prrmse dvc-sync`:\n" + "\n".join(diff[:40])


def test_a_verb_reading_the_config_must_declare_its_keys():
    job = snakemake_dag.Job(
        "reuse_x", [], [], ["out"], set(), [], "prrmse newverb --config c.yaml --out out"
    )
    with pytest.raises(PrrmseError, match="declares no config keys"):
        stage_params.job_params(job, {}, "c.yaml", VERB_KEYS)
    other = snakemake_dag.Job(
        "t", [], [], ["o"], set(), [], "prrmse train --config other.yaml --model unet-seg-acdc-s1"
    )
    with pytest.raises(PrrmseError, match="other.yaml"):
        stage_params.job_params(other, {"train": {}}, "c.yaml", VERB_KEYS)
    bare = snakemake_dag.Job(
        "t", [], [], ["o"], set(), [], "prrmse train --model unet-seg-acdc-s1 --out o"
    )
    with pytest.raises(PrrmseError, match="no --config"):
        stage_params.job_params(bare, {}, "c.yaml", VERB_KEYS)


def test_keys_absent_from_the_config_file_are_tracked_through_an_ancestor():
    cmd = "prrmse train --config c.yaml --model unet-seg-acdc-s1 > l 2>&1"
    job = snakemake_dag.Job("train", [], [], ["o"], set(), [], cmd)
    assert stage_params.job_params(job, {"train": {"lr": 1}}, "c.yaml", VERB_KEYS) == ["train"]
    both = {"train": {}, "networks": {"unet": {}}}
    assert stage_params.job_params(job, both, "c.yaml", VERB_KEYS) == ["networks.unet", "train"]
    # networks.unet absent: `networks` stands in for it
    assert stage_params.job_params(
        job, {"train": {}, "networks": {"x": 1}}, "c.yaml", VERB_KEYS
    ) == [
        "networks",
        "train",
    ]
    plan = ["analysis.plan.rule", "analysis.plan.max_dice_drop", "analysis.plan.max_rel_rmse_w"]
    assert stage_params.tracked_keys(plan, {"analysis": {"sweep": {}}}) == ["analysis"]
    assert stage_params.tracked_keys(plan, {"analysis": {"plan": {"rule": "both"}}}) == [
        "analysis.plan"
    ]
    assert stage_params.tracked_keys(plan, {}) == []
    assert stage_params.tracked_keys(["a", "a.b"], {"a": {"b": 1}}) == ["a"]


def test_parse_verb():
    verb, args = snakemake_dag.parse_verb(
        "mkdir -p a && prrmse figure --number 03 --inputs a.csv b.csv --out x > l 2>&1"
    )
    assert verb == "figure"
    assert args == {"--number": ["03"], "--inputs": ["a.csv", "b.csv"], "--out": ["x"]}
    assert snakemake_dag.parse_verb("echo hi") == (None, {})


def test_commands_have_no_double_spaces_dvc_lock_would_fold_away(stages):
    """DVC folds long commands in dvc.lock at spaces and loses one of two adjacent ones:
    the lock would never match dvc.yaml again ("changed command" forever)."""
    assert snakemake_dag.squeeze_spaces("  a  b \t c --caption 'x  y' \"p  q\"  > l ") == (
        "a b c --caption 'x  y' \"p  q\" > l"
    )
    for name, stage in stages.items():
        unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "Q", stage["cmd"])
        assert "  " not in unquoted and "\t" not in unquoted, name


def test_dvc_lock_round_trips_long_commands(tmp_path):
    """DVC's own YAML writer folds a long command; read back it must be the same string."""
    from dvc.utils.serialize import dump_yaml, load_yaml

    cmd = snakemake_dag.squeeze_spaces(
        "prrmse figure --inputs " + "x/" * 60 + "a.csv  --out b > l 2>&1"
    )
    dump_yaml(tmp_path / "lock.yaml", {"stages": {"s": {"cmd": cmd}}})
    assert load_yaml(tmp_path / "lock.yaml")["stages"]["s"]["cmd"] == cmd


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
    path = dvcgen.write_dvc_yaml(Path("Snakefile"), TINY, tmp_path, verb_keys=VERB_KEYS)
    assert path == tmp_path / "dvc.yaml"
    text = path.read_text()
    assert text.startswith("# Generated from the Snakefile's jobs")
    assert "__pycache__/" in (tmp_path / ".dvcignore").read_text().splitlines()
    assert dvcgen.check_dvc_yaml(Path("Snakefile"), TINY, tmp_path, verb_keys=VERB_KEYS) == []
    path.write_text(text.replace("train--unet-seg-acdc-s1", "train--renamed"))
    assert dvcgen.check_dvc_yaml(Path("Snakefile"), TINY, tmp_path, verb_keys=VERB_KEYS)


# --- a Snakemake run recorded in dvc.lock (a toy workflow: seconds, not minutes) -------------

TOY_SNAKEFILE = """\
configfile: "c.yaml"


rule all:
    input:
        "out/c.txt",
        "out/d",


rule a:
    output:
        "out/a.txt",
    log:
        "logs/a.log",
    shell:
        "echo same > {output} && echo a > {log}"


rule b:
    input:
        "out/a.txt",
    output:
        "out/b.txt",
    log:
        "logs/b.log",
    shell:
        "echo same > {output} && echo b > {log}"


rule c:
    input:
        "out/b.txt",
    output:
        "out/c.txt",
    log:
        "logs/c.log",
    shell:
        "cat {input} > {output} && echo c >> {output} && echo c > {log}"


rule d:
    input:
        "out/a.txt",
    output:
        directory("out/d"),
    log:
        "logs/d.log",
    shell:
        "mkdir -p {output} && cp {input} {output}/x.txt && echo d > {log}"
"""


def _toy(tmp_path: Path, cache_type: str = "reflink,hardlink,symlink,copy") -> tuple[Path, dict]:
    """A git + DVC project running the toy workflow, dvc.yaml generated, the project's link
    cache types; `out/a.txt` and `out/b.txt` have the same bytes (one cache object)."""
    repo = tmp_path / "toy"
    repo.mkdir()
    (repo / "Snakefile").write_text(TOY_SNAKEFILE)
    (repo / "c.yaml").write_text("x: 1\n")
    (repo / "src/prrmse").mkdir(parents=True)
    (repo / "src/prrmse/m.py").write_text("x = 1\n")
    env = e2e.tool_env(repo)
    e2e.run(["git", "init", "-q", "."], repo, env)
    e2e.run([*e2e.DVC, "init", "-q"], repo, env)
    e2e.run([*e2e.DVC, "config", "cache.type", cache_type], repo, env)
    dvcgen.write_dvc_yaml(Path("Snakefile"), Path("c.yaml"), repo, verb_keys=VERB_KEYS)
    return repo, env


def _run_toy(repo: Path, env: dict) -> None:
    e2e.run([*e2e.SNAKEMAKE, "--cores", "1"], repo, env)
    # Snakemake's order of the times, kept apart by more than the file system's resolution
    for age, rel in enumerate(
        [
            "logs/c.log",
            "out/c.txt",
            "logs/b.log",
            "out/b.txt",
            "out/d",
            "out/d/x.txt",
            "logs/d.log",
            "logs/a.log",
            "out/a.txt",
        ]
    ):
        stamp = 1_700_000_000 - 100 * age
        os.utime(repo / rel, (stamp, stamp))


def _dry_run(repo: Path, env: dict) -> str:
    result = e2e.run([*e2e.SNAKEMAKE, "-n", "--cores", "1"], repo, env)
    return result.stdout + result.stderr


def test_record_makes_dvc_and_snakemake_agree(tmp_path):
    repo, env = _toy(tmp_path)
    _run_toy(repo, env)
    made = ["out/a.txt", "out/b.txt", "out/c.txt", "out/d", "out/d/x.txt"]
    made += [f"logs/{n}.log" for n in "abcd"]

    def mtimes() -> dict[str, int]:
        return {rel: (repo / rel).stat().st_mtime_ns for rel in made}

    before = mtimes()
    recorded = record.record_snakemake_run(repo, Path("c.yaml"), verb_keys=VERB_KEYS)
    assert recorded.stages == recorded.committed == ["a", "b", "c", "d"]
    assert recorded.pending == []
    assert record.dvc_status(repo) == {}
    assert "Nothing to be done" in _dry_run(repo, env)
    # every time as Snakemake left it, though DVC replaced the files by links
    assert mtimes() == before
    a, b, c = (repo / f"out/{n}.txt" for n in "abc")
    if a.stat().st_nlink > 1 or a.is_symlink():  # the file system allows links
        assert c.stat().st_nlink == 2 or c.is_symlink()  # stored once, in the cache
        # same bytes, different times: b got a copy of its own, a keeps the link
        assert recorded.unlinked == ["out/b.txt", "out/d/x.txt"]
        assert b.stat().st_ino != a.stat().st_ino
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == {"a", "b", "c", "d"}
    # the directory's hash leaves out Snakemake's timestamp file
    assert (repo / "out/d/.snakemake_timestamp").exists()
    assert ".snakemake_timestamp" in (repo / ".dvcignore").read_text().splitlines()

    # a rerun by Snakemake replaces the linked files, never writes through them
    cache_a = a.resolve() if a.is_symlink() else None
    inode = a.stat().st_ino
    e2e.run([*e2e.SNAKEMAKE, "--cores", "1", "--forcerun", "a"], repo, env)
    assert a.stat().st_ino != inode
    objects = [p for p in (repo / ".dvc/cache/files/md5").rglob("*") if p.is_file()]
    for obj in objects:
        if not obj.name.endswith(".dir"):
            assert lin.md5_file(obj) == obj.parent.name + obj.name, obj
    if cache_a is not None:
        assert cache_a.exists()

    # what Snakemake would still run is left out and named: c is gone, and a has new bytes
    # (a file replaced, never written through its link), so b, c and d are behind
    (repo / "out/c.txt").unlink()
    a.unlink()
    a.write_text("other\n")
    recorded = record.record_snakemake_run(repo, Path("c.yaml"), verb_keys=VERB_KEYS)
    # (record checked that `dvc status` lists none of the recorded stages)
    assert recorded.stages == recorded.committed == ["a"]
    assert recorded.pending == ["b", "c", "d"]
    # recorded as it is: nothing to commit, the record only checked
    assert record.record_snakemake_run(repo, Path("c.yaml"), verb_keys=VERB_KEYS).committed == []


def test_record_refuses_a_stale_dvc_yaml_or_no_dvc(tmp_path):
    repo, _ = _toy(tmp_path)
    text = (repo / "dvc.yaml").read_text()
    (repo / "dvc.yaml").write_text(text.replace("echo b >", "echo B >"))
    with pytest.raises(PrrmseError, match="does not match the Snakefile's jobs for c.yaml"):
        record.record_snakemake_run(repo, Path("c.yaml"), verb_keys=VERB_KEYS)
    (repo / "dvc.yaml").unlink()
    with pytest.raises(PrrmseError, match="dvc.yaml: not found"):
        record.record_snakemake_run(repo, Path("c.yaml"), verb_keys=VERB_KEYS)
    shutil.rmtree(repo / ".dvc")
    with pytest.raises(PrrmseError, match="not a DVC project"):
        record.record_snakemake_run(repo, Path("c.yaml"), verb_keys=VERB_KEYS)


def test_restore_times_gives_files_of_one_cache_object_their_own_times(tmp_path):
    (tmp_path / "x").write_text("same")
    os.link(tmp_path / "x", tmp_path / "y")
    os.link(tmp_path / "x", tmp_path / "z")
    times = {"x": (1, 1_000_000_000), "y": (1, 2_000_000_000), "z": (1, 1_000_000_000)}
    assert record.restore_times(tmp_path, times) == ["y"]
    assert (tmp_path / "x").stat().st_ino == (tmp_path / "z").stat().st_ino
    assert (tmp_path / "y").stat().st_nlink == 1 and (tmp_path / "y").read_text() == "same"
    assert [(tmp_path / n).stat().st_mtime_ns for n in "xyz"] == [10**9, 2 * 10**9, 10**9]


def test_snakemake_refuses_config_overrides():
    # (snakemake's own parser already rejects a one-letter key such as x=1)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(TINY), "--config", "lr=0.1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "--config overrides are not supported" in result.stdout + result.stderr


# --- end to end: a temp copy of the repository, DVC and Snakemake agreeing -------------------


@pytest.fixture(scope="module")
def tiny_run() -> RecordedRun:
    """The session's finished tiny run, made by Snakemake and recorded in DVC."""
    return recorded_run()


def _one_stage_per_rule(repo: Path) -> list[str]:
    """The first stage (by name) of each rule family. DVC removes a forced stage's outputs
    just before its command remakes them, so the order they run in does not matter."""
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    first: dict[str, str] = {}
    for name in stages:
        first.setdefault(name.split("--")[0], name)
    return list(first.values())


def _snakemake_reruns_what_reads_an_edited_value(tiny_run: RecordedRun) -> None:
    """Snakemake sees a config edit as DVC does: the CKA jobs' `settings` param (the values
    `prrmse cka` reads) differs from its record, and no other job's. Checked on the recorded
    run, where nothing else is out of date (Snakemake gives a job one reason only)."""
    config = tiny_run.repo / TINY
    original = config.read_text()
    config.write_text(original.replace("cka: {max_images: 8,", "cka: {max_images: 6,"))
    try:
        dry = tiny_run.snakemake("-n")
    finally:
        config.write_text(original)
    blocks = re.split(r"\n(?:local)?rule ", dry)[1:]
    by_params = {b.split(":", 1)[0] for b in blocks if "reason: Params have changed" in b}
    assert by_params == {"cka"}, dry[-3000:]
    # (`snakemake --list-changes params` is no help: Snakemake 9 lists every output there)


@pytest.mark.slow
def test_dvc_repro_end_to_end(tiny_run):
    """DVC runs every kind of stage itself and gets Snakemake's bytes; a changed param reruns
    exactly the stages below it; reverting it gives the first run's bytes back; and
    Snakemake then agrees nothing needs to run.

    One stage of every rule family is forced through `dvc repro` (every command template
    dvc.yaml holds runs under DVC); the whole graph from scratch would take DVC, which runs
    one stage at a time, ~15 min of CI on 2 cores, and the record test already shows the
    graph's hashes, params and edges agree with Snakemake's."""
    repo, env = tiny_run.repo, tiny_run.env
    assert record.dvc_status(repo) == {}
    _snakemake_reruns_what_reads_an_edited_value(tiny_run)

    forced = _one_stage_per_rule(repo)
    assert {name.split("--")[0] for name in forced} >= {
        "phantoms",
        "prepare",
        "train",
        "sweep",
        "rmse_pair",
        "plan",
        "reuse",
        "figure",
        "table1",
        "claims",
    }
    result, tiny_run.timings["dvc repro --force, one stage per rule"] = e2e.timed(
        [*e2e.DVC, "repro", "--force", "--single-item", *forced], repo, env, e2e.REPRO_TIMEOUT_S
    )
    ran = re.findall(r"Running stage '([^']+)'", result.stdout)
    assert sorted(ran) == sorted(forced), result.stdout[-3000:]
    assert e2e.without_logs(e2e.tracked_hashes(repo)) == e2e.without_logs(tiny_run.hashes), (
        "DVC's run of a stage differs from Snakemake's"
    )
    assert record.dvc_status(repo) == {}

    # the CKA image count changes: exactly the CKA stages and what is made from them rerun
    config = repo / TINY
    original = config.read_text()
    config.write_text(original.replace("cka: {max_images: 8,", "cka: {max_images: 6,"))
    changed = set(record.dvc_status(repo))
    assert changed and all(name.startswith("cka--") for name in changed), changed
    rerun = e2e.run([*e2e.DVC, "repro"], repo, env, e2e.REPRO_TIMEOUT_S).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", rerun))
    assert ran == e2e.downstream_stages(repo, changed)
    assert any(name.startswith("figure_cka--") for name in ran), ran
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock[sorted(changed)[0]]["params"][TINY.as_posix()]["analysis.cka"]["max_images"] == 6

    # back to the committed value: the first run's bytes again (from DVC's run cache where it
    # has them, else rerun deterministically), and DVC sees nothing changed
    config.write_text(original)
    e2e.run([*e2e.DVC, "repro"], repo, env, e2e.REPRO_TIMEOUT_S)
    now = e2e.tracked_hashes(repo)
    assert e2e.without_logs(now) == e2e.without_logs(tiny_run.hashes)
    assert record.dvc_status(repo) == {}
    tiny_run.hashes = now  # the products as before; the rerun stages' logs are new
    assert not e2e.run(["git", "status", "--porcelain", str(TINY)], repo, env).stdout.strip()

    # Snakemake agrees after the sync (its metadata never saw DVC's runs)
    record.sync_snakemake_after_dvc(repo, TINY)
    assert "Nothing to be done" in tiny_run.snakemake("-n")

    # and lineage traces a figure through dvc.lock, every hash still matching
    from prrmse.repro.lineage import lineage

    tree = lineage(Path("results/figures/fig05.png"), root=repo)
    assert tree["trusted"] and tree["stage"]["name"] == "figure--05"


@pytest.mark.slow
def test_a_figure_module_edit_reruns_only_figure_stages(tiny_run):
    """The code manifests track what each verb runs: after an edit to one figure module
    and the manifests' rewrite, `dvc status` lists figure stages only, every Fig. stage
    among them; with the edit undone, nothing."""
    repo, env = tiny_run.repo, tiny_run.env
    assert record.dvc_status(repo) == {}
    module = repo / "src/prrmse/figures/models.py"
    original = module.read_text()
    module.write_text(original + "\n# an edit that changes no behaviour\n")
    try:
        assert set(record.dvc_status(repo)) == {dvcgen.CODE_STAGE}
        e2e.run([*e2e.DVC, "repro", "--single-item", dvcgen.CODE_STAGE], repo, env)
        changed = set(record.dvc_status(repo))
    finally:
        module.write_text(original)
    rules = {name.split("--")[0] for name in changed}
    assert rules <= {"figure", "figure_reuse", "figure_cka", "figure_controls"}, rules
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    assert {name for name in stages if name.startswith("figure--")} <= changed
    e2e.run([*e2e.DVC, "repro", "--single-item", dvcgen.CODE_STAGE], repo, env)
    assert record.dvc_status(repo) == {}


@pytest.mark.slow
def test_dvc_push_then_pull_into_a_fresh_clone(tiny_run, tmp_path):
    """dvc push to a local remote, git clone, dvc pull: every tracked output comes back
    bit-identical, and after `prrmse dvc-sync --touch-snakemake` Snakemake has nothing to do."""
    repo, env = tiny_run.repo, tiny_run.env
    remote = tmp_path / "remote"
    e2e.run([*e2e.DVC, "remote", "add", "--default", "--force", "e2e", str(remote)], repo, env)
    e2e.run(["git", "add", "dvc.lock", ".dvc/config"], repo, env)
    e2e.run(
        [*e2e.GIT, "commit", "-qm", "dvc.lock and a local DVC remote for the round trip"], repo, env
    )
    _, tiny_run.timings["dvc push"] = e2e.timed([*e2e.DVC, "push"], repo, env)
    assert any(remote.rglob("*")), "dvc push wrote nothing"

    clone = tmp_path / "clone"
    e2e.run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    clone_env = e2e.tool_env(clone)
    assert not (clone / "results").exists()
    _, tiny_run.timings["dvc pull"] = e2e.timed([*e2e.DVC, "pull"], clone, clone_env)

    pulled = e2e.tracked_hashes(clone)
    assert pulled == tiny_run.hashes
    kinds = {
        "checkpoints": [p for p in pulled if p.endswith("model.safetensors")],
        "processed data": [p for p in pulled if p.startswith("data/processed/")],
        "raw data": [p for p in pulled if p.startswith("data/raw/")],
        "figures": [p for p in pulled if p.startswith("results/figures/fig")],
        "tables": [p for p in pulled if p.startswith("results/tables/")],
    }
    assert all(kinds.values()), {kind: len(paths) for kind, paths in kinds.items()}
    assert "missing" not in pulled.values()

    e2e.run(["prrmse", "dvc-sync", "--touch-snakemake", "--config", str(TINY)], clone, clone_env)
    dry = e2e.run([*e2e.SNAKEMAKE, "-n", "--configfile", str(TINY)], clone, clone_env)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    print("timings (s):", {k: round(v, 1) for k, v in tiny_run.timings.items()})
    # passed: the remote and the clone (each about as big as the run, ~1 GB) can go
    shutil.rmtree(clone)
    shutil.rmtree(remote)


def test_the_cli_registers_the_dvc_sync_verb():
    from prrmse.cli import repro
    from prrmse.cli.main import build_parser

    args = build_parser().parse_args(["dvc-sync", "--config", str(TINY), "--check"])
    assert args.handler is repro.run_dvc_sync and args.check and not args.touch_snakemake
    assert args.config == TINY and args.snakefile == Path("Snakefile")
