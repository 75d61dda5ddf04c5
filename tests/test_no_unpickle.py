"""No code path unpickles: a static scan of the sources and a guarded run of the CLI.

Unpickling runs arbitrary code from the file, so a checkpoint, array, plan or
config found on disk must never be unpickled (DESIGN §3, safe loading). The
static scan finds the loading calls that can; the dynamic check runs a small
study through the CLI verbs with every unpickling entry point made to raise,
and proves that the guard itself catches a deliberate unpickle.
"""

from __future__ import annotations

import ast
import contextlib
import io
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "benchmarks")
TINY = ROOT / "tests" / "workflow" / "tiny.yaml"

UNSAFE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "joblib",
    "shelve",
    "marshal",
}
UNSAFE_ATTRIBUTES = {
    "read_pickle",
    "to_pickle",
    "unsafe_load",
    "full_load",
    "full_load_all",
    "load_all",
}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


class UnpicklingForbidden(AssertionError):
    """Raised by the guard where code tried to unpickle."""


# --- static scan ----------------------------------------------------------------------------


def _dotted(node: ast.AST) -> str:
    """`np.load` -> "np.load"; anything not a plain dotted name -> ""."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_calls(source: str, filename: str = "<source>") -> list[str]:
    """Every import or call in `source` that can unpickle, as 'file:line: what'."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names]
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else names
            for module in modules:
                if module.split(".")[0] in UNSAFE_MODULES:
                    found.append(f"{where}: imports {module}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in {
                "numpy",
                "torch",
            }:
                found += [
                    f"{where}: imports {name} from {node.module}"
                    for name in names
                    if name == "load"
                ]
        elif isinstance(node, ast.Attribute) and node.attr in UNSAFE_ATTRIBUTES:
            found.append(f"{where}: uses .{node.attr}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name.endswith("torch.load") or name == "torch.load":
                if not _is_true(_keyword(node, "weights_only")):
                    found.append(f"{where}: torch.load without weights_only=True")
            elif name in ("np.load", "numpy.load") and not (
                _keyword(node, "allow_pickle") is None
                or (
                    isinstance(_keyword(node, "allow_pickle"), ast.Constant)
                    and _keyword(node, "allow_pickle").value is False
                )
            ):
                found.append(f"{where}: np.load with allow_pickle not False")
            elif name == "yaml.load":
                loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
                if loader is None or _dotted(loader).split(".")[-1] not in SAFE_YAML_LOADERS:
                    found.append(f"{where}: yaml.load without a safe Loader")
    return found


def test_sources_never_call_an_unpickling_loader():
    files = sorted(path for folder in SCANNED for path in (ROOT / folder).rglob("*.py"))
    assert len(files) > 20, "the scan found too few sources: wrong root?"
    problems = [
        p for path in files for p in unsafe_calls(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not problems, "unsafe loading:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "from pickle import loads",
        "import joblib",
        "import dill as d",
        "torch.load(path)",
        "torch.load(path, weights_only=False)",
        "np.load(path, allow_pickle=True)",
        "numpy.load(path, allow_pickle=flag)",
        "pd.read_pickle(path)",
        "frame.to_pickle(path)",
        "yaml.load(text)",
        "yaml.load(text, Loader=yaml.Loader)",
        "yaml.unsafe_load(text)",
        "yaml.full_load(text)",
        "from torch import load",
    ],
)
def test_the_scan_catches_each_unsafe_form(source):
    assert unsafe_calls(source), source


@pytest.mark.parametrize(
    "source",
    [
        "torch.load(path, weights_only=True)",
        "np.load(path)",
        "np.load(path, mmap_mode='r', allow_pickle=False)",
        "yaml.safe_load(text)",
        "yaml.load(text, Loader=yaml.SafeLoader)",
        "yaml.load(text, yaml.CSafeLoader)",
        "from safetensors.torch import load_file",
    ],
)
def test_the_scan_lets_safe_forms_pass(source):
    assert not unsafe_calls(source), source


# --- dynamic guard --------------------------------------------------------------------------

_GUARD_ACTIVE = False
_AUDIT_HOOK_ADDED = False


def _audit(event: str, args: tuple) -> None:
    # Unpickling any object but plain containers looks a class up through find_class, which
    # raises this audit event in both the C and the pure-Python unpickler, including
    # subclasses and references bound before the guard patched the module functions.
    if _GUARD_ACTIVE and event == "pickle.find_class":
        raise UnpicklingForbidden(f"unpickling looked up {args[0]}.{args[1]}")


def _refuse(name: str):
    def refuse(*_args, **_kwargs):
        raise UnpicklingForbidden(f"{name} called")

    return refuse


@contextlib.contextmanager
def forbid_unpickling() -> Iterator[None]:
    """Make every unpickling entry point raise UnpicklingForbidden while the block runs."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _guarded(monkeypatch)


def _guarded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    global _GUARD_ACTIVE, _AUDIT_HOOK_ADDED
    import _pickle

    for module in (pickle, _pickle):
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(module, name, _refuse(f"{module.__name__}.{name}"))
    monkeypatch.setattr(pickle, "_Unpickler", _refuse("pickle._Unpickler"))
    monkeypatch.setattr(pickle, "_load", _refuse("pickle._load"))
    monkeypatch.setattr(pickle, "_loads", _refuse("pickle._loads"))
    real_torch_load = torch.load

    def torch_load(*args, **kwargs):
        if kwargs.get("weights_only") is not True:
            raise UnpicklingForbidden("torch.load without weights_only=True")
        return real_torch_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", torch_load)
    if not _AUDIT_HOOK_ADDED:  # audit hooks cannot be removed: add one, switch it by a flag
        sys.addaudithook(_audit)
        _AUDIT_HOOK_ADDED = True
    _GUARD_ACTIVE = True
    try:
        yield
    finally:
        _GUARD_ACTIVE = False


class _Payload:
    pass


def test_the_guard_catches_a_deliberate_unpickle(tmp_path):
    blob = pickle.dumps({"a": _Payload()})
    saved_loads = pickle.loads  # bound before the guard: only the audit hook can see it
    obj = np.empty(1, dtype=object)
    obj[0] = _Payload()
    np.save(tmp_path / "object.npy", obj, allow_pickle=True)
    torch.save({"x": _Payload()}, tmp_path / "pickled.pt")
    with forbid_unpickling():
        with pytest.raises(UnpicklingForbidden):
            pickle.loads(blob)
        with pytest.raises(UnpicklingForbidden):
            pickle.load(io.BytesIO(blob))
        with pytest.raises(UnpicklingForbidden):
            pickle.Unpickler(io.BytesIO(blob)).load()
        with pytest.raises(UnpicklingForbidden):
            saved_loads(blob)
        with pytest.raises(UnpicklingForbidden):
            np.load(tmp_path / "object.npy", allow_pickle=True)
        with pytest.raises(UnpicklingForbidden):
            torch.load(tmp_path / "pickled.pt")
        with pytest.raises(UnpicklingForbidden):
            torch.load(tmp_path / "pickled.pt", weights_only=False)
    # and the guard is off again afterwards
    assert isinstance(pickle.loads(blob)["a"], _Payload)


def _cli(*argv: str | Path) -> None:
    from prrmse.cli.main import main

    assert main([str(a) for a in argv]) == 0, argv


def test_a_small_study_runs_without_unpickling(tmp_path):
    """phantoms -> prepare -> train (two models) -> sweep, BN stats, RMSE, plan -> tables and
    a figure, then every loader on the products, all with unpickling forbidden."""
    from prrmse.analysis.plan import load_plan
    from prrmse.core.config import load_config
    from prrmse.core.provenance import read_csv_provenance
    from prrmse.data.processed import load_processed
    from prrmse.models.checkpoint import load_tensors

    config = yaml.safe_load(TINY.read_text())
    config["train"].update(epochs=1, iterations_per_epoch=1)
    raw, data, out = (
        tmp_path / "raw" / "acdc",
        tmp_path / "processed" / "acdc",
        tmp_path / "results",
    )
    config["datasets"]["acdc"]["root"] = str(raw)  # the phantoms this test writes, not ./data
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    seg, auto = out / "models" / "unet-seg-acdc-s1", out / "models" / "unet-auto-acdc-s1"
    pair = "unet-seg-acdc-s1__unet-auto-acdc-s1"
    sweep, rmse, bnstats = (out / kind / f"{pair}.csv" for kind in ("sweeps", "rmse", "bnstats"))
    plan = out / "plans" / f"{pair}.json"
    with forbid_unpickling():
        _cli("phantoms", "--config", config_path, "--dataset", "acdc", "--out", raw)
        _cli("prepare", "--config", config_path, "--dataset", "acdc", "--out", data)
        for model, folder in (("unet-seg-acdc-s1", seg), ("unet-auto-acdc-s1", auto)):
            _cli(
                "train",
                "--config",
                config_path,
                "--model",
                model,
                "--data",
                data,
                "--out",
                folder,
                "--threads",
                1,
            )
        checkpoints = (seg / "model.safetensors", auto / "model.safetensors")
        _cli(
            "sweep",
            "--config",
            config_path,
            "--target-checkpoint",
            checkpoints[0],
            "--source-checkpoint",
            checkpoints[1],
            "--data",
            data,
            "--out",
            sweep,
            "--threads",
            1,
        )
        _cli(
            "bnstats",
            "--target-checkpoint",
            checkpoints[0],
            "--source-checkpoint",
            checkpoints[1],
            "--out",
            bnstats,
        )
        _cli("rmse", "--checkpoints", *checkpoints, "--out", rmse)
        _cli(
            "plan",
            "--config",
            config_path,
            "--sweep",
            sweep,
            "--rmse",
            rmse,
            "--target-model",
            "unet-seg-acdc-s1",
            "--source-model",
            "unet-auto-acdc-s1",
            "--out",
            plan,
        )
        _cli("table", "--kind", "plans", "--inputs", plan, "--out", out / "tables" / "plans")
        _cli(
            "table",
            "--kind",
            "baseline",
            "--inputs",
            seg / "metrics.json",
            auto / "metrics.json",
            "--out",
            out / "tables" / "baseline",
        )
        _cli("figure", "--number", "05", "--inputs", bnstats, "--out", out / "figures" / "fig05")

        tensors, record = load_tensors(checkpoints[0])
        assert tensors and record
        assert len(load_processed(data).images) > 0
        assert load_plan(plan)["entries"]
        assert load_config(config_path)["train"]["epochs"] == 1
        assert read_csv_provenance(sweep)
