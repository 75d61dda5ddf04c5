"""prrmse lineage: a product traced through dvc.lock and its own provenance stamp."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image, PngImagePlugin

from prrmse.core import provenance
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.models.checkpoint import save_tensors
from prrmse.repro import lineage as lin


def _png(path: Path, record: dict | None) -> None:
    info = PngImagePlugin.PngInfo()
    if record is not None:
        info.add_text("prrmse", json.dumps(record))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (4, 4)).save(path, pnginfo=info)


def _entry(root: Path, rel: str) -> dict:
    path = root / rel
    digest = lin.md5_dir(path, root) if path.is_dir() else lin.md5_file(path)
    return {"path": rel, "hash": "md5", "md5": digest}


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    """raw file -> (stage table) CSV -> (stage figure) PNG, plus a code folder, under one dvc.lock."""
    root = tmp_path
    (root / "data/raw").mkdir(parents=True)
    (root / "data/raw/scan.txt").write_text("raw bytes\n")
    (root / "src/prrmse").mkdir(parents=True)
    (root / "src/prrmse/mod.py").write_text("x = 1\n")
    (root / "results").mkdir()
    csv_stamp = provenance.stamp(
        seed=7,
        device="cpu (test)",
        inputs={"data/raw/scan.txt": sha256_file(root / "data/raw/scan.txt")},
    )
    (root / "results/table.csv").write_text(provenance.csv_header(csv_stamp) + "a,b\n1,2\n")
    _png(
        root / "results/fig.png",
        provenance.stamp(
            figure="fig", inputs={"results/table.csv": sha256_file(root / "results/table.csv")}
        ),
    )
    lock = {
        "schema": "2.0",
        "stages": {
            "table": {
                "cmd": "prrmse table --config c.yaml --out results/table.csv",
                "deps": [_entry(root, "data/raw/scan.txt"), _entry(root, "src/prrmse")],
                "params": {"c.yaml": {"table.width": 3}},
                "outs": [_entry(root, "results/table.csv")],
            },
            "figure": {
                "cmd": "prrmse figure --inputs results/table.csv --out results/fig",
                "deps": [_entry(root, "results/table.csv"), _entry(root, "src/prrmse")],
                "outs": [_entry(root, "results/fig.png")],
            },
        },
    }
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    return root


def test_tree_follows_dvc_lock_to_the_raw_file(chain):
    tree = lin.lineage(Path("results/fig.png"), root=chain)
    assert tree["path"] == "results/fig.png" and tree["origin"] == "dvc.lock"
    assert tree["stage"]["name"] == "figure" and tree["status"] == "ok" and tree["trusted"]
    assert tree["md5"] == lin.md5_file(chain / "results/fig.png")
    assert tree["provenance"]["figure"] == "fig"
    table, code = tree["inputs"]
    assert code["path"] == "src/prrmse" and code["role"] == "code" and code["type"] == "directory"
    assert table["stage"]["name"] == "table"
    assert table["stage"]["params"] == {"c.yaml": {"table.width": 3}}
    assert table["summary"]["seed"] == 7 and table["summary"]["device"] == "cpu (test)"
    raw = table["inputs"][0]
    assert raw["path"] == "data/raw/scan.txt" and raw["stage"] is None and raw["inputs"] == []
    assert raw["status"] == "ok" and raw["trusted"]

    text = lin.render_tree(tree)
    lines = text.splitlines()
    assert lines[0].startswith("results/fig.png  md5 ") and "[figure]" in lines[0]
    assert (
        lines[1].startswith("  results/table.csv")
        and "[table]" in lines[1]
        and "seed=7" in lines[1]
    )
    assert lines[2] == "      params: table.width=3"
    assert lines[3].startswith("    data/raw/scan.txt") and " ok" in lines[3]
    assert "NOT TRUSTED" not in text


def test_a_modified_file_is_flagged_and_not_trusted(chain):
    (chain / "data/raw/scan.txt").write_text("edited\n")
    tree = lin.lineage(Path("results/fig.png"), root=chain)
    raw = tree["inputs"][0]["inputs"][0]
    assert raw["status"] == "modified" and not raw["trusted"]
    assert tree["status"] == "ok" and not tree["trusted"]  # the figure's own bytes are intact
    text = lin.render_tree(tree)
    assert "modified" in text and "NOT TRUSTED" in text and "ok (input changed)" in text

    (chain / "results/fig.png").write_bytes(b"not the figure")
    assert lin.lineage(Path("results/fig.png"), root=chain)["status"] == "modified"


def test_code_change_is_seen(chain):
    (chain / "src/prrmse/mod.py").write_text("x = 2\n")
    tree = lin.lineage(Path("results/table.csv"), root=chain)
    assert tree["inputs"][1]["status"] == "modified" and not tree["trusted"]


def test_json_output(chain, capsys):
    tree = lin.run_lineage(Path("results/fig.png"), as_json=True, root=chain)
    printed = json.loads(capsys.readouterr().out)
    assert printed["stage"]["name"] == "figure"
    assert printed["inputs"][0]["inputs"][0]["path"] == "data/raw/scan.txt"
    assert printed["trusted"] is tree["trusted"] is True
    lin.run_lineage(Path("results/fig.png"), as_json=False, root=chain)
    assert capsys.readouterr().out.startswith("results/fig.png")


def test_without_dvc_lock_the_stamps_are_followed(chain):
    (chain / "dvc.lock").unlink()
    tree = lin.lineage(Path("results/fig.png"), root=chain)
    assert tree["origin"] == "stamp" and tree["stage"] is None and tree["status"] == "unrecorded"
    (table,) = tree["inputs"]
    assert table["path"] == "results/table.csv" and table["sha256"] and table["status"] == "ok"
    (raw,) = table["inputs"]
    assert raw["path"] == "data/raw/scan.txt" and raw["status"] == "ok"
    assert "no dvc.lock" in lin.render_tree(tree)
    (chain / "data/raw/scan.txt").write_text("edited\n")
    assert (
        lin.lineage(Path("results/fig.png"), root=chain)["inputs"][0]["inputs"][0]["status"]
        == "modified"
    )


def test_verdict_tells_modified_from_unrecorded(chain, capsys):
    """TRUSTED (exit 0), NOT TRUSTED naming what changed, UNVERIFIED when hashes were only
    never recorded (a Snakemake run not recorded in dvc.lock): never "differs" for that."""
    from prrmse.cli.main import main

    assert lin.verdict(lin.lineage(Path("results/fig.png"), root=chain)).startswith("TRUSTED")
    assert main(["lineage", "results/fig.png", "--root", str(chain)]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("TRUSTED")

    lock = chain / "dvc.lock"
    text = lock.read_text()
    lock.unlink()  # a fresh Snakemake run: stamps only, the figure's own hash never recorded
    tree = lin.lineage(Path("results/fig.png"), root=chain)
    line = lin.verdict(tree)
    assert line.startswith("UNVERIFIED: no hash was recorded for results/fig.png")
    assert "prrmse dvc-record" in line and "differs from" not in line
    assert lin.problems(tree) == [("results/fig.png", "unrecorded")]
    assert main(["lineage", "results/fig.png", "--root", str(chain)]) == 1
    captured = capsys.readouterr()
    assert captured.out.rstrip().splitlines()[-1] == line
    assert captured.err.startswith("prrmse lineage: error: results/fig.png: UNVERIFIED")
    assert len(captured.err.strip().splitlines()) == 1

    lock.write_text(text)
    old = lock.stat().st_mtime - 100
    os.utime(lock, (old, old))
    (chain / "data/raw/scan.txt").write_text("edited\n")
    tree = lin.lineage(Path("results/fig.png"), root=chain)
    line = lin.verdict(tree)
    assert line.startswith("NOT TRUSTED: data/raw/scan.txt modified")
    assert "written after" in line and "prrmse dvc-record" in line  # newer than dvc.lock
    with pytest.raises(PrrmseError, match="NOT TRUSTED: data/raw/scan.txt modified"):
        lin.run_lineage(Path("results/fig.png"), root=chain)
    (chain / "data/raw/scan.txt").unlink()
    assert "data/raw/scan.txt missing" in lin.verdict(
        lin.lineage(Path("results/fig.png"), root=chain)
    )


def _resource_table(root: Path, digest: str, key: str = "inputs") -> None:
    stamp = provenance.stamp(**{key: {"prrmse/resources/paper_table1.csv": digest}})
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "results/table1.csv").write_text(provenance.csv_header(stamp) + "a\n1\n")


@pytest.mark.parametrize("key", ["inputs", "resources"])
def test_package_resources_are_found_in_the_package_with_their_hash(tmp_path, key):
    """A stamp names the paper's table by its place in the package, not by a path: it is
    looked up in the installed package wherever the command runs, and its sha256 checked."""
    from prrmse.results import paper

    assert not (tmp_path / "prrmse").exists()
    _resource_table(tmp_path, sha256_file(paper.TABLE1_CSV), key)
    tree = lin.lineage(Path("results/table1.csv"), root=tmp_path)
    (resource,) = tree["inputs"]
    assert resource["path"] == "prrmse/resources/paper_table1.csv"
    assert resource["status"] == "ok" and resource["origin"] == "package"
    assert resource["type"] == "file" and resource["trusted"]
    assert Path(resource["location"]).resolve() == paper.TABLE1_CSV.resolve()
    line = next(x for x in lin.render_tree(tree).splitlines() if "paper_table1" in x)
    assert "  ok  [package]" in line

    _resource_table(tmp_path, "0" * 64, key)
    tree = lin.lineage(Path("results/table1.csv"), root=tmp_path)
    assert tree["inputs"][0]["status"] == "modified" and not tree["trusted"]
    assert "prrmse/resources/paper_table1.csv modified" in lin.verdict(tree)


def test_package_resources_are_checked_through_dvc_lock_too(tmp_path):
    """dvc.lock vouches for src/prrmse as a whole; the stamp names the resource the table
    compared itself with, and that is checked in the package as well."""
    from prrmse.results import paper

    _resource_table(tmp_path, sha256_file(paper.TABLE1_CSV))
    lock = {
        "stages": {
            "table1": {
                "cmd": "prrmse table1",
                "deps": [],
                "outs": [_entry(tmp_path, "results/table1.csv")],
            }
        }
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    tree = lin.lineage(Path("results/table1.csv"), root=tmp_path)
    assert tree["origin"] == "dvc.lock" and tree["trusted"]
    (resource,) = tree["inputs"]
    assert resource["role"] == "resource" and resource["origin"] == "package"
    assert resource["status"] == "ok"


def test_unknown_resource_is_missing_not_looked_up_elsewhere(tmp_path):
    assert lin.package_resource("prrmse/resources/../cli.py") is None
    assert lin.package_resource("results/x.csv") is None
    _resource_table(tmp_path, "0" * 64)
    text = (tmp_path / "results/table1.csv").read_text()
    (tmp_path / "results/table1.csv").write_text(text.replace("paper_table1.csv", "nope.csv"))
    tree = lin.lineage(Path("results/table1.csv"), root=tmp_path)
    assert tree["inputs"][0]["status"] == "missing"
    assert "prrmse/resources/nope.csv missing" in lin.verdict(tree)


def test_file_inside_a_directory_out(tmp_path):
    root = tmp_path
    (root / "data/raw/acdc/p1").mkdir(parents=True)
    (root / "data/raw/acdc/p1/a.txt").write_text("a\n")
    (root / "data/raw/acdc/b.txt").write_text("b\n")
    out = _entry(root, "data/raw/acdc")
    lock = {
        "stages": {
            "phantoms--acdc": {
                "cmd": "prrmse phantoms",
                "deps": [],
                "outs": [out],
                "params": {"c.yaml": {"phantoms.seed": 1}},
            }
        }
    }
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    node = lin.lineage(Path("data/raw/acdc/p1/a.txt"), root=root)
    assert node["within"] == "data/raw/acdc" and node["status"] == "ok" and node["type"] == "file"
    # with the directory's manifest in the DVC cache, the file's own md5 is checked
    value = out["md5"][:-4]
    cache = root / ".dvc/cache/files/md5" / value[:2]
    cache.mkdir(parents=True)
    (cache / (value[2:] + ".dir")).write_text(
        json.dumps(lin.dir_manifest(root / "data/raw/acdc", root))
    )
    node = lin.lineage(Path("data/raw/acdc/p1/a.txt"), root=root)
    assert node["md5"] == lin.md5_file(root / "data/raw/acdc/p1/a.txt") and node["status"] == "ok"
    (root / "data/raw/acdc/b.txt").write_text("changed\n")
    assert lin.lineage(Path("data/raw/acdc/p1/a.txt"), root=root)["status"] == "ok"
    folder = lin.lineage(Path("data/raw/acdc"), root=root)
    assert folder["status"] == "modified" and folder["changed_files"] == ["b.txt"]
    assert "changed: b.txt" in lin.render_tree(folder)


def test_directory_hash_equals_dvcs(tmp_path):
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db.local import LocalHashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a\n")
    (folder / "sub/b.bin").write_bytes(b"b\r\n\x00")
    fs = LocalFileSystem()
    _, _, obj = build(LocalHashFileDB(fs, str(tmp_path / "cache")), str(folder), fs, "md5")
    assert lin.md5_dir(folder, tmp_path) == obj.hash_info.value


def test_dvcignore_is_honoured(tmp_path):
    (tmp_path / "pkg/__pycache__").mkdir(parents=True)
    (tmp_path / "pkg/m.py").write_text("x\n")
    before = lin.md5_dir(tmp_path / "pkg", tmp_path)
    (tmp_path / ".dvcignore").write_text("__pycache__/\n*.pyc\n")
    (tmp_path / "pkg/__pycache__/m.cpython-311.pyc").write_bytes(b"\x00")
    (tmp_path / "pkg/x.pyc").write_bytes(b"\x00")
    assert lin.md5_dir(tmp_path / "pkg", tmp_path) == before


def test_missing_path_is_an_error(tmp_path):
    with pytest.raises(PrrmseError, match="no such file"):
        lin.lineage(Path("nope.csv"), root=tmp_path)


def test_bad_lock_is_an_error(chain):
    (chain / "dvc.lock").write_text("just text\n")
    with pytest.raises(PrrmseError, match="not a dvc.lock"):
        lin.lineage(Path("results/fig.png"), root=chain)


# --- provenance read from each product type ------------------------------------------------


def test_provenance_from_csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(provenance.csv_header(provenance.stamp(seed=3)) + "a\n1\n")
    stamp = lin.read_provenance(path)
    assert stamp["seed"] == 3 and "commit" in stamp["code"]
    assert lin.stamp_summary(stamp)["seed"] == 3


def test_provenance_from_png_and_pdf(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    record = provenance.stamp(seed=5, device="cpu (x)")
    text = json.dumps(record, sort_keys=True)
    fig = plt.figure()
    fig.savefig(tmp_path / "f.png", metadata={"prrmse": text})
    fig.savefig(tmp_path / "f.pdf", metadata={"Subject": text})
    plt.close(fig)
    assert lin.read_provenance(tmp_path / "f.png") == record
    assert lin.read_provenance(tmp_path / "f.pdf") == record
    assert lin.stamp_summary(record)["device"] == "cpu (x)"
    _png(tmp_path / "plain.png", None)
    assert lin.read_provenance(tmp_path / "plain.png") is None


def test_provenance_from_safetensors(tmp_path):
    record = {
        "kind": "model",
        "name": "unet-seg-acdc-s4",
        "seed": 4,
        "config": {"train": {"lr": 0.1}},
        "provenance": provenance.stamp(device="cpu (y)"),
    }
    save_tensors(tmp_path / "m.safetensors", {"w": torch.zeros(2)}, record)
    stamp = lin.read_provenance(tmp_path / "m.safetensors")
    assert (
        stamp["device"] == "cpu (y)"
        and stamp["seed"] == 4
        and stamp["config"]["train"]["lr"] == 0.1
    )
    summary = lin.stamp_summary(stamp)
    assert summary["seed"] == 4 and summary["device"] == "cpu (y)" and "version" in summary


def test_provenance_from_json_markdown_and_unstamped(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps({"entries": [], "provenance": {"seed": 9}}))
    assert lin.read_provenance(tmp_path / "plan.json") == {"seed": 9}
    (tmp_path / "metrics.json").write_text(json.dumps({"dice": [1.0]}))
    assert lin.read_provenance(tmp_path / "metrics.json") is None
    (tmp_path / "t.md").write_text('<!-- provenance: {"seed": 2} -->\n| a |\n')
    assert lin.read_provenance(tmp_path / "t.md") == {"seed": 2}
    (tmp_path / "t.tex").write_text('% provenance: {"seed": 8}\n\\begin{table}\n')
    assert lin.read_provenance(tmp_path / "t.tex") == {"seed": 8}
    (tmp_path / "broken.safetensors").write_bytes(b"nonsense")
    assert lin.read_provenance(tmp_path / "broken.safetensors") is None


def test_provenance_of_a_processed_dataset(tmp_path):
    data = tmp_path / "data/processed/acdc"
    data.mkdir(parents=True)
    (data / "meta.json").write_text(
        json.dumps({"dataset": "acdc", "root": "data/raw/acdc", "provenance": {"seed": 1}})
    )
    stamp = lin.read_provenance(data)
    assert stamp == {"seed": 1, "dataset": "acdc", "root": "data/raw/acdc"}


def test_stamps_lead_from_a_checkpoint_to_the_raw_files(tmp_path):
    """No dvc.lock: checkpoint record -> processed dataset (index sha256) -> raw files it lists."""
    raw = tmp_path / "data/raw/acdc/training/patient001"
    raw.mkdir(parents=True)
    (raw / "img.nii.gz").write_bytes(b"image")
    (raw / "gt.nii.gz").write_bytes(b"label")
    data = tmp_path / "data/processed/acdc"
    data.mkdir(parents=True)
    img, gt = (
        "data/raw/acdc/training/patient001/img.nii.gz",
        "data/raw/acdc/training/patient001/gt.nii.gz",
    )
    (data / "index.csv").write_text(
        "row,image_file,image_sha256,label_file,label_sha256\n"
        f"0,{img},{sha256_file(tmp_path / img)},{gt},{sha256_file(tmp_path / gt)}\n"
    )
    (data / "meta.json").write_text(
        json.dumps({"root": "data/raw/acdc", "provenance": provenance.stamp()})
    )
    record = {
        "kind": "model",
        "seed": 1,
        "provenance": provenance.stamp(device="cpu"),
        "data": {"dir": "data/processed/acdc", "index_sha256": sha256_file(data / "index.csv")},
    }
    save_tensors(tmp_path / "results/models/m/model.safetensors", {"w": torch.zeros(1)}, record)

    tree = lin.lineage(Path("results/models/m/model.safetensors"), root=tmp_path)
    assert tree["summary"]["seed"] == 1 and tree["lock"] is None
    (processed,) = tree["inputs"]
    assert processed["path"] == "data/processed/acdc" and processed["status"] == "ok"
    (raw_node,) = processed["inputs"]
    assert raw_node["path"] == "data/raw/acdc" and raw_node["status"] == "ok"
    assert raw_node["raw_files"] == {"count": 2, "modified": [], "missing": []}
    assert "raw files: 2, all match the index" in lin.render_tree(tree)

    (tmp_path / img).write_bytes(b"other image")
    tree = lin.lineage(Path("results/models/m/model.safetensors"), root=tmp_path)
    raw_node = tree["inputs"][0]["inputs"][0]
    assert raw_node["status"] == "modified" and raw_node["raw_files"]["modified"] == [img]
    assert not tree["trusted"]


def test_dvc_lock_tree_names_the_raw_files_a_processed_dataset_read(tmp_path):
    """Through dvc.lock the raw folder is one md5; the processed index's sha256 of each raw
    file is checked on that node too, so the tree names the files and flags a changed one."""
    img = "data/raw/acdc/training/patient001/img.nii.gz"
    (tmp_path / img).parent.mkdir(parents=True)
    (tmp_path / img).write_bytes(b"image")
    data = tmp_path / "data/processed/acdc"
    data.mkdir(parents=True)
    (data / "index.csv").write_text(
        f"row,image_file,image_sha256\n0,{img},{sha256_file(tmp_path / img)}\n"
    )
    (data / "meta.json").write_text(json.dumps({"root": "data/raw/acdc"}))
    lock = {
        "schema": "2.0",
        "stages": {
            "phantoms": {"cmd": "p", "outs": [_entry(tmp_path, "data/raw/acdc")]},
            "prepare": {
                "cmd": "q",
                "deps": [_entry(tmp_path, "data/raw/acdc")],
                "outs": [_entry(tmp_path, "data/processed/acdc")],
            },
        },
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    tree = lin.lineage(Path("data/processed/acdc"), root=tmp_path)
    (raw_node,) = tree["inputs"]
    assert raw_node["stage"]["name"] == "phantoms" and raw_node["status"] == "ok"
    assert raw_node["raw_files"] == {"count": 1, "modified": [], "missing": []}
    assert tree["trusted"] and "raw files: 1, all match the index" in lin.render_tree(tree)

    # the index says otherwise than the file (dvc.lock alone would still vouch for the folder)
    (data / "index.csv").write_text(f"row,image_file,image_sha256\n0,{img},{'0' * 64}\n")
    lock["stages"]["prepare"]["outs"] = [_entry(tmp_path, "data/processed/acdc")]
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    tree = lin.lineage(Path("data/processed/acdc"), root=tmp_path)
    assert tree["status"] == "ok" and not tree["trusted"]
    assert tree["inputs"][0]["raw_files"]["modified"] == [img]
    assert "NOT TRUSTED" in lin.render_tree(tree)


def test_the_cli_registers_the_lineage_verb(chain, capsys):
    from prrmse.cli.main import build_parser

    args = build_parser().parse_args(["lineage", "results/fig.png", "--json", "--root", str(chain)])
    args.handler(args)
    assert json.loads(capsys.readouterr().out)["path"] == "results/fig.png"


@pytest.mark.slow
def test_lineage_of_fig03_from_a_finished_tiny_run():
    """`prrmse lineage` on a real dvc.lock: fig03 down to the phantom files, nothing flagged."""
    from tests import e2e
    from tests.e2e_runs import recorded_run

    tiny = recorded_run()
    figure = "results/figures/fig03.png"
    text = e2e.run(["prrmse", "lineage", figure], tiny.repo, tiny.env).stdout
    print(text)
    assert text.startswith(f"{figure}  md5 ") and "[figure--03]" in text
    for flag in ("NOT TRUSTED", "modified", "missing", "unrecorded", "input changed"):
        assert flag not in text, flag
    raw_line = next(line for line in text.splitlines() if "data/raw/acdc/" in line)
    assert "[phantoms--acdc]" in raw_line and "all match the index" in raw_line

    tree = json.loads(e2e.run(["prrmse", "lineage", figure, "--json"], tiny.repo, tiny.env).stdout)
    assert tree["trusted"] and tree["lock"] == "dvc.lock"

    def nodes(node):
        yield node
        for child in node["inputs"]:
            yield from nodes(child)

    found = {node["path"]: node for node in nodes(tree)}
    assert {
        "results/models/unet-seg-acdc-s1/model.safetensors",
        "data/processed/acdc",
        "data/raw/acdc",
        "src/prrmse",
    } <= set(found)
    assert found["data/raw/acdc"]["raw_files"]["count"] > 0
    assert found["results/models/unet-seg-acdc-s1/model.safetensors"]["summary"]["seed"] == 1
