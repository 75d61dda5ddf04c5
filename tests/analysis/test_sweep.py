"""The replacement sweep: exact against the naive sweep, fast where allowed, safe in place."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from prrmse.analysis.sweep.bnfold import fold_overrides, fold_pairs
from prrmse.analysis.sweep.engine import run_sweep
from prrmse.analysis.sweep.prefix import PrefixCache, forwards_replaced, record_calls
from prrmse.analysis.sweep.replacement import SweepSettings, naive_sweep, replacement_sweep
from prrmse.analysis.sweep.rows import COLUMNS, DiceCounts
from prrmse.core.errors import PrrmseError
from prrmse.core.provenance import read_csv_provenance
from prrmse.data.processed import load_processed
from prrmse.models.checkpoint import save_tensors
from prrmse.models.layers import get_tensor, index_layers
from prrmse.models.registry import ARCH_ATTR, build_model
from tests.conftest import write_processed

PATIENT_CSV_COLUMNS = ("condition", "family", "layer", "kind", "patient", "class", "dice")

SMALL_PSPNET = {"ppm_channels": 8, "bottleneck_channels": 16}
NETWORKS = {
    "unet": ("unet", {"width": 4}),
    "pspnet": ("pspnet", {**SMALL_PSPNET, "conv_bias": False}),
}


def calibrated(name: str, seed: int, images: torch.Tensor, **options) -> nn.Module:
    """Random weights, BN statistics of `images`, logits standardised so every class wins."""
    torch.manual_seed(seed)
    model = build_model(name, **options)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.momentum = None
        model.train()
        model(images)
        for bn in bns:
            bn.momentum = 0.1
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
        model.eval()
        head = next(layer for layer in index_layers(model, (1, *images.shape[1:])) if layer.head)
        conv = model.get_submodule(head.module_name)
        logits = model(images).transpose(0, 1).flatten(1)
        conv.weight.div_(logits.std(1).reshape(-1, 1, 1, 1))
        conv.bias.sub_(logits.mean(1)).div_(logits.std(1))
    return model


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 3 val patients of 2 slices (the helper puts the last quarter of patients in val).
    return write_processed(tmp_path_factory.mktemp("sweep") / "acdc", n_patients=12, slices=2)


@pytest.fixture(scope="module")
def val_set(data_dir: Path) -> tuple[torch.Tensor, np.ndarray, pd.DataFrame]:
    dataset = load_processed(data_dir)
    rows = dataset.rows("val")
    images = torch.from_numpy(np.array(dataset.images[rows]))[:, None]
    return images, np.array(dataset.labels[rows]), dataset.index.iloc[rows].reset_index(drop=True)


@pytest.fixture(scope="module")
def pairs(val_set) -> dict[str, tuple[nn.Module, nn.Module]]:
    images = val_set[0]
    return {
        key: (calibrated(name, 1, images, **options), calibrated(name, 2, images, **options))
        for key, (name, options) in NETWORKS.items()
    }


@pytest.fixture(scope="module")
def tables(pairs, val_set) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Prefix and naive sweeps of both networks, 4 slices per batch (last batch partial)."""
    settings = SweepSettings(batch_size=4)
    return {
        key: (
            replacement_sweep(target, source, *val_set, settings),
            naive_sweep(target, source, *val_set, settings),
        )
        for key, (target, source) in pairs.items()
    }


def _state_bytes(model: nn.Module) -> dict[str, bytes]:
    return {key: t.cpu().contiguous().numpy().tobytes() for key, t in model.state_dict().items()}


@pytest.mark.parametrize("key", NETWORKS)
def test_prefix_sweep_is_bit_identical_to_naive_on_every_row(tables, key):
    fast, naive = tables[key]
    assert list(fast.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(fast, naive, check_exact=True)
    assert np.array_equal(fast["dice"].to_numpy(), naive["dice"].to_numpy(), equal_nan=True)
    replaced = fast[fast["status"] == "replaced"]
    assert (replaced["difference"].abs() > 0).mean() > 0.3, "test models too insensitive"
    assert fast[fast["family"] == "baseline"].shape[0] == 4
    assert fast.loc[fast["head"], "module"].nunique() == 1


@pytest.mark.parametrize("key", [*NETWORKS, "hazards"])
def test_replayed_passes_give_bit_identical_logits_and_skip_the_prefix(
    pairs, val_set, key, monkeypatch
):
    """Without the sweep's guard (`PrefixCache.intact`), each replayed pass equals a full one
    and runs no conv before the replaced layer."""
    if key == "hazards":
        target, source = (calibrated_hazards(seed, val_set[0]) for seed in (1, 2))
    else:
        target, source = pairs[key]
    batch = val_set[0][:4]
    convs_run: list[nn.Module] = []
    conv_forward = nn.Conv2d._conv_forward

    def counted(self, *args):
        convs_run.append(self)
        return conv_forward(self, *args)

    monkeypatch.setattr(nn.Conv2d, "_conv_forward", counted)
    with torch.no_grad():
        _, calls = record_calls(target, lambda: target(batch))
        cache = PrefixCache(calls)
        for layer in index_layers(target, (1, *batch.shape[1:])):
            module = target.get_submodule(layer.module_name)
            for kind in layer.kinds:
                live = get_tensor(target, layer, kind)
                saved = live.clone()
                live.copy_(get_tensor(source, layer, kind))
                full = target(batch)
                convs_run.clear()
                with forwards_replaced(cache.overrides_for(module) or {}):
                    replayed = target(batch)
                live.copy_(saved)
                assert torch.equal(full, replayed), f"{layer.module_name} {kind}"
                assert cache.intact()
                # Exactly the convs from the replaced layer on ran: the prefix was replayed.
                start = next(c.enter for c in calls if c.module is module)
                suffix = [
                    c.module for c in calls if isinstance(c.module, nn.Conv2d) and c.enter >= start
                ]
                assert convs_run == suffix, f"{layer.module_name} {kind}"
                if layer.head:
                    assert convs_run == [module]


class _Split(nn.Module):
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x, x * 2]  # a list output whose first item aliases the input


class _EditsInput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.add_(1.0)  # a side effect on its input that later code reads
        return x * 0.5


def _conv_bn() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))


class _DoublesInput(nn.Module):
    """Edits its input, then ends in a call whose output it returns (a tail call)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _conv_bn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.mul_(2.0)
        return self.inner(x)


class _HalvesOutput(nn.Module):
    """Returns its last call's output, but edited in place after that call."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _conv_bn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).mul_(0.5)


class Hazards(nn.Module):
    """Every pattern that could fool prefix reuse: in-place edits of recorded outputs, of
    inputs (by the module, by its caller afterwards, before a tail call), modules called
    twice (one in place), an alias (Identity), a list output, a residual add, an output
    edited after a tail call. The replay test fails without any one of the guards of
    `record_calls` and of the shortcuts."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True)
        )
        self.block, self.doubler = _conv_bn(), _DoublesInput()
        self.conv_a, self.bn_a = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.shared = nn.ReLU(inplace=True)
        self.squash = nn.Tanh()
        self.alias, self.split, self.edit = nn.Identity(), _Split(), _EditsInput()
        self.conv_b, self.bn_b = nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4)
        self.halver = _HalvesOutput()
        self.head = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        s = self.squash(x)  # first of two calls, with a clean output
        b = self.block(x)
        x.add_(0.1)  # edits the input `block` was called with
        d = self.doubler(x)
        y = self.shared(self.bn_a(self.conv_a(x)))
        z = self.alias(y)
        z += x
        first, _ = self.split(z)
        w = self.edit(first)
        u = self.shared(self.bn_b(self.conv_b(torch.cat([first, w], 1))))
        return self.head(self.squash(self.halver(u)) + s + b + d)


def test_hazardous_in_place_patterns_stay_exact_and_leave_the_target_untouched(val_set):
    images = val_set[0]
    target, source = calibrated_hazards(1, images), calibrated_hazards(2, images)
    before = _state_bytes(target)
    parameters = [id(t) for t in target.parameters()]
    for settings in (SweepSettings(batch_size=4), SweepSettings(batch_size=4, channels_last=True)):
        first = replacement_sweep(target, source, *val_set, settings)
        second = replacement_sweep(target, source, *val_set, settings)
        naive = naive_sweep(target, source, *val_set, settings)
        pd.testing.assert_frame_equal(first, second, check_exact=True)
        pd.testing.assert_frame_equal(first, naive, check_exact=True)
        assert _state_bytes(target) == before
    assert [id(t) for t in target.parameters()] == parameters
    assert not target.training and all(not m.training for m in target.modules())


def calibrated_hazards(seed: int, images: torch.Tensor) -> nn.Module:
    torch.manual_seed(seed)
    model = Hazards()
    with torch.no_grad():
        model.train()
        for _ in range(3):
            model(images)
        model.eval()
    return model


def test_in_place_sweep_leaves_the_target_as_it_was(pairs, val_set, tables):
    target, source = pairs["pspnet"]
    before = _state_bytes(target)
    target.train()
    again = replacement_sweep(target, source, *val_set, SweepSettings(batch_size=4))
    assert _state_bytes(target) == before
    assert target.training and all(m.training for m in target.modules())
    target.eval()
    pd.testing.assert_frame_equal(again, tables["pspnet"][0], check_exact=True)


def test_a_model_against_itself_changes_nothing(pairs, val_set):
    target = pairs["unet"][0]
    table = replacement_sweep(target, copy.deepcopy(target), *val_set, SweepSettings(batch_size=4))
    replaced = table[table["status"] == "replaced"]
    assert len(replaced) == 4 * (18 * 4 + 19 * 2)
    assert np.array_equal(replaced["dice"], replaced["baseline_dice"], equal_nan=True)
    assert (replaced["difference"].fillna(0) == 0).all()


def test_absent_kinds_are_listed_as_absent_never_as_numbers(tables):
    table = tables["pspnet"][0]
    absent = table[table["status"] == "absent"]
    # PSPNet without conv bias: every conv but the head lacks B.
    assert set(absent["kind"]) == {"B"} and set(absent["family"]) == {"conv"}
    assert absent["layer"].nunique() == 25 and not absent["head"].any()
    assert absent[["dice", "difference"]].isna().all().all()
    head_bias = table[table["head"] & (table["kind"] == "B")]
    assert (head_bias["status"] == "replaced").all() and head_bias["dice"].notna().all()
    assert (tables["unet"][0]["status"] != "absent").all()


@pytest.mark.parametrize("key", NETWORKS)
def test_fast_settings_stay_within_the_near_tie_bound(pairs, val_set, tables, key):
    target, source = pairs[key]
    images = val_set[0]
    with torch.no_grad():
        _, calls = record_calls(target, lambda: target(images))
        folded = fold_overrides(fold_pairs(target, calls), ())
        assert len(folded) == 2 * {"unet": 18, "pspnet": 25}[key]
        plain = target(images).argmax(1)
        with forwards_replaced(folded):
            fast = target(images).argmax(1)
    assert (plain != fast).float().mean() <= 1e-3
    settings = SweepSettings(batch_size=4, fold_bn=True, channels_last=True)
    table = replacement_sweep(target, source, *val_set, settings)
    naive = tables[key][1]
    assert (table["status"] == naive["status"]).all()
    difference = np.abs(table["dice"].to_numpy() - naive["dice"].to_numpy())
    assert np.nanmax(difference) <= 0.02
    assert np.nanmean(difference) <= 1e-3
    assert np.array_equal(np.isnan(table["dice"]), np.isnan(naive["dice"]))


def test_bf16_on_cpu_keeps_prefix_reuse_exact_and_moves_dice_only_a_little(pairs, val_set, tables):
    target, source = pairs["pspnet"]
    settings = SweepSettings(batch_size=4, bf16=True)
    lines: list[str] = []
    table = replacement_sweep(target, source, *val_set, settings, log=lines.append)
    assert "opt-in bf16: rounding changed" in lines[0]
    assert "exact" in SweepSettings().numerics()
    # Prefix reuse under bf16 gives the naive bf16 sweep's rows exactly.
    pd.testing.assert_frame_equal(
        table, naive_sweep(target, source, *val_set, settings), check_exact=True
    )
    fp32 = tables["pspnet"][1]
    difference = np.abs(table["dice"].to_numpy() - fp32["dice"].to_numpy())
    assert 0 < np.nanmax(difference) <= 0.05  # rounding changed, the science did not
    assert np.array_equal(np.isnan(table["dice"]), np.isnan(fp32["dice"]))


def test_incompatible_sources_are_refused_naming_the_first_difference(pairs, val_set):
    unet, pspnet = pairs["unet"][0], pairs["pspnet"][0]
    images = val_set[0]
    cases = [
        (pspnet, "different architectures: pspnet .*unet"),
        (build_model("unet", width=8), r"source tensor BN 1 RM has shape \[8\], target \[4\]"),
    ]
    for source, message in cases:
        with pytest.raises(PrrmseError, match=message) as error:
            replacement_sweep(unet, source, *val_set, source_name="src.safetensors")
        assert error.value.where == "src.safetensors"
    biased = build_model("pspnet", **SMALL_PSPNET, conv_bias=True)
    with pytest.raises(PrrmseError, match="source has, unlike the target, tensor conv 1 B"):
        naive_sweep(pspnet, biased, *val_set)
    with pytest.raises(PrrmseError, match="source lacks tensor conv 1 B"):
        replacement_sweep(biased, pspnet, *val_set)
    with pytest.raises(PrrmseError, match="validation set"):
        replacement_sweep(unet, unet, images[:3], *val_set[1:])


def test_a_class_never_present_has_nan_dice_not_one(pairs, val_set):
    images, labels, index = val_set
    without_rv = np.where(labels == 1, 0, labels).astype(np.uint8)
    target, source = pairs["unet"]
    table = replacement_sweep(
        target, source, images, without_rv, index, SweepSettings(batch_size=4)
    )
    assert table.loc[table["class"] == 1, "dice"].isna().all()
    present = table[(table["class"] != 1) & (table["status"] != "absent")]
    assert present["dice"].notna().all()


def _save(model: nn.Module, path: Path) -> Path:
    record = {
        "kind": "model",
        **{
            key: getattr(model, ARCH_ATTR)[k]
            for key, k in (("arch", "name"), ("options", "options"))
        },
    }
    save_tensors(path, model.state_dict(), record)
    return path


def test_run_sweep_writes_a_csv_with_provenance_that_pandas_reads_back(pairs, data_dir, tmp_path):
    target, source = (
        _save(m, tmp_path / f"{n}.safetensors") for n, m in zip("ts", pairs["unet"], strict=True)
    )
    labels = np.load(data_dir / "labels.npy")
    np.save(data_dir / "labels.npy", np.where(labels == 1, 0, labels).astype(np.uint8))
    lines: list[str] = []
    out = tmp_path / "sweeps" / "sweep.csv"
    try:
        table = run_sweep(
            target, source, data_dir, out, SweepSettings(batch_size=4), log=lines.append
        )
    finally:
        np.save(data_dir / "labels.npy", labels)
    warnings = [line for line in lines if "never present" in line]
    assert len(warnings) == 1 and "class 1" in warnings[0] and "labels.npy" in warnings[0]
    record = read_csv_provenance(out)
    assert record["settings"]["batch_size"] == 4 and record["source"] == str(source)
    assert len(record["target_sha256"]) == 64 and "code" in record and "device" in record
    assert record["conditions"] == ["source"]
    back = pd.read_csv(out, comment="#")
    # `condition` comes last, so readers selecting the older columns are unaffected.
    assert list(back.columns) == [*COLUMNS, "condition"] and len(back) == len(table)
    assert (back["condition"] == "source").all()
    assert np.array_equal(back["dice"].to_numpy(), table["dice"].to_numpy(), equal_nan=True)
    patients_csv = out.parent / "sweep.patients.csv"
    patients_record = read_csv_provenance(patients_csv)
    assert patients_record["sweep_csv"] == str(out)
    assert patients_record["target_sha256"] == record["target_sha256"]
    patients = pd.read_csv(patients_csv, comment="#", keep_default_na=False, na_values=["nan"])
    assert list(patients.columns) == list(PATIENT_CSV_COLUMNS)
    assert set(patients["condition"]) == {"source"} and patients["patient"].nunique() == 3
    assert patients.loc[patients["class"] == 1, "dice"].isna().all()  # class 1 removed above
    assert not list(out.parent.glob(".*tmp*"))


def test_csv_leaves_absent_cells_empty_and_writes_undefined_dice_as_nan(tables, tmp_path):
    from prrmse.analysis.sweep.engine import write_sweep_csv

    table = tables["pspnet"][0].copy()
    table.loc[(table["class"] == 1) & (table["status"] != "absent"), "dice"] = np.nan
    write_sweep_csv(tmp_path / "s.csv", table, {"note": "test"})
    rows = (tmp_path / "s.csv").read_text().splitlines()
    assert rows[0].startswith("# provenance: ")
    absent = next(row for row in rows if ",absent," in row)
    assert absent.endswith(",,,")
    undefined = next(row for row in rows if ",replaced,1," in row)
    assert ",nan," in undefined


def test_dice_counted_as_on_a_gpu_is_the_numpy_dice_bit_for_bit(val_set):
    """The GPU path of `DiceCounts` (torch counts where the predictions are), run on the
    CPU, gives every row's Dice and per-patient Dice exactly as numpy's path."""
    _, labels, index = val_set
    rng = np.random.default_rng(7)
    predictions = [rng.integers(0, 4, labels.shape, dtype=np.uint8) for _ in range(3)]
    predictions[1][:] = labels  # a perfect row
    by_numpy, by_torch = (DiceCounts(labels, index, 3, torch_on_cpu=t) for t in (False, True))
    for row, predicted in enumerate(predictions):
        for start in range(0, len(labels), 4):  # the last batch partial
            batch = torch.from_numpy(predicted[start : start + 4])
            by_numpy.add(row, start, batch)
            by_torch.add(row, start, batch)
    np.testing.assert_array_equal(by_torch.counts, by_numpy.counts)
    assert by_torch.dice().tobytes() == by_numpy.dice().tobytes()
    assert by_torch.per_patient()[1].tobytes() == by_numpy.per_patient()[1].tobytes()
    assert np.nanmin(by_numpy.dice()[1]) == 1.0
