import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prrmse.core.config import dataset_config, layer_site, load_config, validate_config
from prrmse.core.errors import PrrmseError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(ROOT / "config" / name)
    assert set(config["datasets"]) == {"acdc", "t1", "rvsc"}


def test_defaults_are_filled_in_nested_sections(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "datasets": {
                    "x": {
                        "format": "acdc",
                        "root": "r",
                        "split": {"method": "random", "n_train": 1, "n_val": 1},
                    }
                }
            }
        )
    )
    config = load_config(path)
    assert config["prepare"]["normalize"] == "zscore"
    assert config["phantoms"]["acdc"]["n_patients"] == 100
    assert config["datasets"]["x"]["split"]["seed"] == 1234
    assert config["datasets"]["x"]["label_map"] == {0: 0, 1: 1, 2: 2, 3: 3}


def _error(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(PrrmseError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_typo_in_key_is_refused(tmp_path):
    assert "prepare" in _error(tmp_path, "prepare: {spacing_mn: 1.0}\n")


def test_wrong_type_is_refused(tmp_path):
    assert "prepare.shape" in _error(tmp_path, "prepare: {shape: big}\n")


def test_label_map_outside_class_space_is_refused(tmp_path):
    msg = _error(
        tmp_path,
        "datasets: {a: {format: acdc, root: r, label_map: {1: 7}, split: {method: folder}}}\n",
    )
    assert "label_map" in msg


def test_unknown_format_and_bad_yaml(tmp_path):
    assert "format" in _error(
        tmp_path, "datasets: {a: {format: dicomdir, root: r, split: {method: folder}}}\n"
    )
    assert "YAML" in _error(tmp_path, "prepare: [unclosed\n")


def test_missing_config_file(tmp_path):
    with pytest.raises(PrrmseError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_dataset_name_lists_known(tmp_path):
    config = load_config(ROOT / "config" / "config.yaml")
    with pytest.raises(PrrmseError, match="acdc, rvsc, t1"):
        dataset_config(config, "kaggle")


# ---------------------------------------------------------------- site settings (issue 15)

PAPER = ROOT / "config" / "paper.yaml"


def _paper_copy(tmp_path: Path, site: dict | str | None = None) -> Path:
    """config/paper.yaml copied into <tmp>/config/, with `site` as config/site.yaml beside it."""
    folder = tmp_path / "config"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "paper.yaml"
    config.write_text(PAPER.read_text())
    if site is not None:
        (folder / "site.yaml").write_text(site if isinstance(site, str) else yaml.safe_dump(site))
    return config


SITE = {
    "datasets": {"acdc": {"root": "/data/ACDC/database"}, "t1": {"root": "/data/T1"}},
    "train": {"device": "cpu"},
    "compute": {"threads": 16},
}


def test_paper_config_names_a_git_ignored_site_file():
    assert yaml.safe_load(PAPER.read_text())["site"] == "site.yaml"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "config/site.yaml"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0


def test_site_file_is_deep_merged_over_the_config(tmp_path):
    plain = load_config(_paper_copy(tmp_path / "a"))
    merged = load_config(_paper_copy(tmp_path / "b", SITE))
    assert merged["datasets"]["acdc"]["root"] == "/data/ACDC/database"
    assert merged["datasets"]["t1"]["root"] == "/data/T1"
    assert merged["train"]["device"] == "cpu" and merged["compute"]["threads"] == 16
    # everything the site file does not set is the tracked file's
    assert merged["datasets"]["acdc"]["split"] == plain["datasets"]["acdc"]["split"]
    assert merged["datasets"]["rvsc"] == plain["datasets"]["rvsc"]
    assert merged["train"]["epochs"] == plain["train"]["epochs"]
    for key in ("datasets", "train", "compute"):
        plain.pop(key), merged.pop(key)
    assert merged == plain


def test_absent_site_file_changes_nothing(tmp_path):
    config = _paper_copy(tmp_path)
    raw = yaml.safe_load(config.read_text())
    assert load_config(config) == validate_config(raw)


def test_site_file_naming_an_unknown_key_is_one_line_naming_it(tmp_path):
    config = _paper_copy(tmp_path, {"datasets": {"acdc": {"rooot": "/data/ACDC"}}})
    site = config.parent / "site.yaml"
    with pytest.raises(PrrmseError) as info:
        load_config(config)
    message = str(info.value)
    assert message.startswith(f"{site}: config key datasets.acdc: unknown key")
    assert "'rooot'" in message and "\n" not in message

    with pytest.raises(
        PrrmseError, match=r"site\.yaml: config key <top level>: unknown key .*'cluster'"
    ):
        load_config(_paper_copy(tmp_path, {"cluster": {"partition": "gpu"}}))


def test_site_file_errors_name_the_right_file(tmp_path):
    config = _paper_copy(tmp_path, {"train": {"epochs": "many"}})
    with pytest.raises(
        PrrmseError, match=r"^.*/config/site\.yaml: config key train\.epochs: 'many'"
    ):
        load_config(config)
    # a fault of the tracked file is the tracked file's, whatever the site file sets
    text = PAPER.read_text().replace("  epochs: 50", "  epoch: 50")
    config.write_text(text)
    (config.parent / "site.yaml").write_text(yaml.safe_dump(SITE))
    with pytest.raises(PrrmseError, match=r"/config/paper\.yaml: config key train: unknown key"):
        load_config(config)
    for bad, words in (
        ("- a\n- b\n", "site file must be a mapping"),
        ("site: other.yaml\n", "cannot name another"),
        ("train: {epochs: [\n", "not valid YAML"),
    ):
        (config.parent / "site.yaml").write_text(bad)
        config.write_text(PAPER.read_text())
        with pytest.raises(PrrmseError, match=words) as info:
            load_config(config)
        assert str(info.value).startswith(str(config.parent / "site.yaml"))


def test_snakefile_helper_and_load_config_see_the_same_values(tmp_path):
    """common.smk merges with `layer_site` into snakemake's config, then validates it with
    the same schema (filling the same defaults): the values equal load_config's."""
    config_path = _paper_copy(tmp_path, SITE)
    config = yaml.safe_load(config_path.read_text())
    assert layer_site(config, config_path) == config_path.parent / "site.yaml"
    assert validate_config(config) == load_config(config_path)
    untouched = yaml.safe_load(_paper_copy(tmp_path / "none").read_text())
    assert layer_site(untouched, tmp_path / "none" / "config" / "paper.yaml") is None
    bad = _paper_copy(tmp_path, {"train": {"gpus": 2}})
    with pytest.raises(PrrmseError, match="site.yaml: config key train: unknown key"):
        layer_site(yaml.safe_load(bad.read_text()), bad)


def test_snakemake_jobs_read_the_site_roots(tmp_path):
    """A real `snakemake -n` on config/paper.yaml with a site file: the prepare job reads the
    site's ACDC root and passes the tracked config file (whose site file its verb merges)."""
    root = tmp_path / "ACDC" / "database"
    root.mkdir(parents=True)
    _paper_copy(tmp_path, {"datasets": {"acdc": {"root": str(root)}}})
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "data/processed/acdc",
            "-n",
            "-p",
            "--cores",
            "1",
            "-s",
            str(ROOT / "Snakefile"),
            "--configfile",
            "config/paper.yaml",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert f"input: {root}" in output
    assert f"prrmse prepare --config {tmp_path / 'config' / 'paper.yaml'} --dataset acdc" in output


def test_dvc_params_track_the_site_file_too(tmp_path):
    from prrmse.cli.main import verb_config_keys
    from prrmse.repro.dvcgen import build_stage
    from prrmse.repro.snakemake_dag import Job
    from prrmse.repro.stage_params import StageParams, site_params_file

    config_path = _paper_copy(tmp_path)
    raw = yaml.safe_load(config_path.read_text())
    assert site_params_file(tmp_path, "config/paper.yaml", raw) is None
    (config_path.parent / "site.yaml").write_text(yaml.safe_dump(SITE))
    site = site_params_file(tmp_path, "config/paper.yaml", raw)
    assert site == ("config/site.yaml", SITE)
    job = Job(
        rule="prepare",
        wildcards=[("dataset", "acdc")],
        inputs=["/data/ACDC/database"],
        outputs=["data/processed/acdc"],
        directories={"data/processed/acdc"},
        logs=["logs/prepare/acdc.log"],
        shellcmd="prrmse prepare --config config/paper.yaml --dataset acdc --out data/processed/acdc",
    )
    keys = verb_config_keys()
    with_site = StageParams("config/paper.yaml", raw, keys, site)
    assert build_stage(job, with_site)["params"] == [
        {"config/paper.yaml": ["datasets.acdc", "prepare"]},
        {"config/site.yaml": ["datasets.acdc"]},
    ]
    rvsc = Job(
        **{
            **job.__dict__,
            "wildcards": [("dataset", "rvsc")],
            "shellcmd": job.shellcmd.replace("acdc", "rvsc"),
        }
    )
    assert build_stage(rvsc, with_site)["params"] == [
        {"config/paper.yaml": ["datasets.rvsc", "prepare"]}
    ]
    assert build_stage(job, StageParams("config/paper.yaml", raw, keys))["params"] == [
        {"config/paper.yaml": ["datasets.acdc", "prepare"]}
    ]
