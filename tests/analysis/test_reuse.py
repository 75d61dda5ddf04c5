"""Reuse fine-tuning: plan tensors loaded, frozen ones bit-identical after real training."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from prrmse.analysis.reuse import plan_setup
from prrmse.analysis.rmse import probe_shape, rmse_to_ideal
from prrmse.core.errors import PrrmseError
from prrmse.core.naming import RunSpec, parse_model_name, parse_run_name, run_label
from prrmse.core.provenance import read_csv_provenance
from prrmse.core.tabular import IDEAL_COLUMNS
from prrmse.figures.paper import make_figure
from prrmse.figures.reuse import plot_rmse_to_ideal
from prrmse.figures.saving import read_figure_provenance
from prrmse.models.checkpoint import load_model, save_tensors
from prrmse.models.layers import KINDS_OF_FAMILY, get_tensor, index_layers
from prrmse.models.registry import build_model
from prrmse.models.start import resolve_start
from prrmse.training.settings import train_settings
from prrmse.training.train import initial_model, train_model
from tests.analysis.test_rmse import save_unet

TARGET = "unet-seg-acdc-s1"
# BN 1 reuses its running stats while its weight and bias train; BN 2 is reused whole;
# BN 3 reuses only RM, so its RV must keep updating; BN 4 reuses only its weight.
REUSED = {
    ("bn", 1, "RM"),
    ("bn", 1, "RV"),
    ("bn", 2, "RM"),
    ("bn", 2, "RV"),
    ("bn", 2, "RW"),
    ("bn", 2, "RB"),
    ("bn", 3, "RM"),
    ("bn", 4, "RW"),
    ("conv", 1, "W"),
    ("conv", 1, "B"),
    ("conv", 2, "W"),
}


def scratch(width: int = 4, seed: int | None = None) -> nn.Module:
    """The target as train_model starts it (its recorded start), or with `seed` a model
    drawn with torch seeded by it (a source)."""
    network = {"arch": "unet", "options": {"width": width}}
    if seed is not None:
        return initial_model(network, seed)
    return initial_model(network, resolve_start(network, parse_model_name(TARGET)))


def stays_as_loaded(key: tuple, frozen_bn: str) -> bool:
    """Whether a frozen tensor is bit-identical after training: parameters always; BN
    running statistics unless `update` (plain PyTorch) lets them follow the data."""
    return key[2] not in ("RM", "RV") or frozen_bn != "update"


def save_source(path: Path, width: int = 4, seed: int = 7) -> Path:
    """A unet checkpoint whose BN buffers differ from any fresh model's zeros and ones."""
    model = scratch(width, seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    record = {"kind": "model", "name": path.stem, "arch": "unet", "options": {"width": width}}
    save_tensors(path, model.state_dict(), record)
    return path


def write_plan(path: Path, model: nn.Module, reused: set, arch: str | None = "unet") -> Path:
    """A plan JSON by hand: every (layer, kind) of the model, "reuse" where listed."""
    entries, counts = [], {"bn": 0, "conv": 0}
    for layer in index_layers(model, probe_shape(model)):
        counts[layer.family] += 1
        for kind in KINDS_OF_FAMILY[layer.family]:
            key = (layer.family, layer.number, kind)
            decision = "absent" if kind in layer.absent else "keep"
            decision = "reuse" if key in reused else decision
            entries.append(
                dict(
                    family=layer.family,
                    layer=layer.number,
                    module=layer.module_name,
                    kind=kind,
                    decision=decision,
                    evidence={},
                )
            )
    plan = dict(
        target="t",
        source="s",
        arch=arch,
        layer_counts=counts,
        thresholds={},
        rule="sweep",
        entries=entries,
        share={},
        non_reusable={},
        provenance={},
    )
    path.write_text(json.dumps(plan))
    return path


def entries_of(model: nn.Module):
    for layer in index_layers(model, probe_shape(model)):
        for kind in layer.kinds:
            yield layer, kind, (layer.family, layer.number, kind)


def trains_visibly(layer, kind: str) -> bool:
    # Every UNet conv3x3 feeds a BatchNorm, which subtracts the batch mean: the gradient
    # of its bias is zero up to rounding noise, so whether it "changed" is chance.
    return not (kind == "B" and not layer.head)


def train(tiny_config, data: Path, out: Path, setup) -> dict:
    spec = parse_model_name(TARGET)
    network = tiny_config["networks"][spec.network]
    return train_model(
        spec, train_settings(tiny_config), network, data, out, setup=setup, log=lambda _: None
    )


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    source = save_source(tmp_path / "source.safetensors")
    return source, write_plan(tmp_path / "plan.json", scratch(), REUSED)


@pytest.mark.parametrize("frozen_bn", ["update", "hold", "eval"])
def test_freeze_after_real_training_steps_in_each_frozen_bn_mode(
    tiny_config, tiny_data, tmp_path, inputs, frozen_bn
) -> None:
    source_path, plan_path = inputs
    setup = plan_setup(source_path, plan_path, "freeze", frozen_bn)
    record = train(tiny_config, tiny_data, tmp_path / "run", setup)
    source, init = load_model(source_path)[0], scratch()
    expected_scalars = sum(
        get_tensor(init, layer, kind).numel()
        for layer, kind, key in entries_of(init)
        if key in REUSED
    )
    # BN 1, 2 and 3 have loaded running statistics: eval mode runs those modules in eval
    eval_bn = ["inc.double_conv.1", "inc.double_conv.4", "down1.maxpool_conv.1.double_conv.1"]
    assert record["setup"] == {
        "mode": "freeze",
        "frozen_bn": frozen_bn,
        "source": "source",
        "source_sha256": record["setup"]["source_sha256"],
        "plan": str(plan_path),
        "plan_sha256": record["setup"]["plan_sha256"],
        "loaded": len(REUSED),
        "frozen": len(REUSED),
        "frozen_scalars": expected_scalars,
        "eval_bn": eval_bn if frozen_bn == "eval" else [],
    }
    trained = load_model(tmp_path / "run" / "model.safetensors")[0]
    for layer, kind, key in entries_of(trained):
        now = get_tensor(trained, layer, kind)
        if key in REUSED:
            same = torch.equal(now, get_tensor(source, layer, kind))
            assert same == stays_as_loaded(key, frozen_bn), key
            if not same:  # update: the statistics follow the retrained layers' outputs
                assert torch.isfinite(now).all() and key[2] in ("RM", "RV")
        elif frozen_bn == "eval" and key == ("bn", 3, "RV"):
            # its module runs in eval mode: the unloaded twin of a loaded RM stays too
            assert torch.equal(now, get_tensor(init, layer, kind)), key
        elif trains_visibly(layer, kind):
            assert not torch.equal(now, get_tensor(init, layer, kind)), key
    # weight and bias of BN 1 train in every mode, eval included (gradients pass)
    bn1 = next(layer for layer, _, key in entries_of(trained) if key == ("bn", 1, "RW"))
    assert not torch.equal(get_tensor(trained, bn1, "RW"), get_tensor(init, bn1, "RW"))


def test_frozen_bn_modes_differ_in_what_a_training_step_normalises_with(inputs) -> None:
    """One forward pass in train mode: update and hold normalise with batch statistics
    (update then moves the running ones), eval with the loaded running statistics."""
    source_path, plan_path = inputs
    images = torch.randn(4, 1, 32, 32)
    outputs, stats = {}, {}
    for frozen_bn in ("update", "hold", "eval"):
        model = scratch()
        plan_setup(source_path, plan_path, "freeze", frozen_bn)(model)
        model.train()
        bn = model.get_submodule("inc.double_conv.1")
        captured = []
        bn.register_forward_hook(lambda _m, _i, out, keep=captured: keep.append(out.detach()))
        model(images)
        assert model.training and bn.training  # the model's own mode, seen from outside
        outputs[frozen_bn], stats[frozen_bn] = captured[0], bn.running_mean.clone()
    source = load_model(source_path)[0].get_submodule("inc.double_conv.1")
    assert torch.equal(outputs["update"], outputs["hold"])
    assert not torch.equal(outputs["eval"], outputs["update"])
    assert not torch.equal(stats["update"], source.running_mean)
    assert torch.equal(stats["hold"], source.running_mean)
    assert torch.equal(stats["eval"], source.running_mean)


def test_finetune_starts_from_the_source_and_trains_everything(
    tiny_config, tiny_data, tmp_path, inputs
) -> None:
    source_path, plan_path = inputs
    setup = plan_setup(source_path, plan_path, "finetune")
    source, init, started = load_model(source_path)[0], scratch(), scratch()
    record = setup(started)
    assert (record["loaded"], record["frozen"], record["frozen_scalars"]) == (len(REUSED), 0, 0)
    assert all(p.requires_grad for p in started.parameters())
    for layer, kind, key in entries_of(started):
        origin = source if key in REUSED else init
        assert torch.equal(get_tensor(started, layer, kind), get_tensor(origin, layer, kind)), key

    train(tiny_config, tiny_data, tmp_path / "run", setup)
    trained = load_model(tmp_path / "run" / "model.safetensors")[0]
    for layer, kind, key in entries_of(trained):
        if key in REUSED and trains_visibly(layer, kind):
            assert not torch.equal(
                get_tensor(trained, layer, kind), get_tensor(source, layer, kind)
            ), key


def test_selffer_source_is_the_targets_own_trained_model(tiny_config, tiny_data, tmp_path) -> None:
    # Yosinski's "BnB" control: the plan's tensors come from the target's own trained run,
    # frozen (bit-identical through training), and the mode is recorded as "selffer".
    own = tmp_path / "own"
    train(tiny_config, tiny_data, own, None)
    plan_path = write_plan(tmp_path / "plan.json", scratch(), REUSED)
    setup = plan_setup(own / "model.safetensors", plan_path, "selffer")
    record = train(tiny_config, tiny_data, tmp_path / "selffer", setup)
    assert record["setup"]["mode"] == "selffer" and record["setup"]["frozen_bn"] == "update"
    assert record["setup"]["source"] == TARGET and record["setup"]["frozen"] == len(REUSED)
    first = load_model(own / "model.safetensors")[0]
    again, again_record = load_model(tmp_path / "selffer" / "model.safetensors")
    assert again_record["setup"]["mode"] == "selffer"
    init = scratch()
    for layer, kind, key in entries_of(again):
        now = get_tensor(again, layer, kind)
        if key in REUSED:
            assert torch.equal(now, get_tensor(first, layer, kind)) == stays_as_loaded(
                key, "update"
            ), key
        elif trains_visibly(layer, kind):
            assert not torch.equal(now, get_tensor(init, layer, kind)), key


@pytest.mark.parametrize(
    ("name", "mode", "source", "label"),
    [
        ("pspnet-seg-acdc-n10-s1", "scratch", None, "n10 scratch s1"),
        (
            "pspnet-seg-acdc-n10-s1-freeze-from-pspnet-auto-t1",
            "freeze",
            "pspnet-auto-t1",
            "n10 freeze T1-auto s1",
        ),
        (
            "unet-seg-acdc-n50-s2-finetune-from-unet-seg-rvsc",
            "finetune",
            "unet-seg-rvsc",
            "n50 finetune RVSC-seg s2",
        ),
        (
            "pspnet-seg-acdc-n10-s1-selffer-from-pspnet-seg-acdc",
            "selffer",
            "pspnet-seg-acdc",
            "n10 selffer ACDC-seg s1",
        ),
    ],
)
def test_run_names_round_trip(name, mode, source, label) -> None:
    run = parse_run_name(name)
    assert (run.mode, run.source, run.name) == (mode, source, name)
    assert RunSpec(run.model, mode, source).name == name
    assert run_label(name) == label


def test_a_selffer_run_from_another_task_is_refused() -> None:
    with pytest.raises(PrrmseError, match="selffer run's source is the target's own task"):
        parse_run_name("pspnet-seg-acdc-n10-s1-selffer-from-pspnet-auto-t1")
    with pytest.raises(PrrmseError, match="unknown mode 'thaw'"):
        plan_setup(Path("unused.safetensors"), Path("unused.json"), "thaw")


def test_held_buffers_survive_dtype_moves_and_mode_switches(inputs) -> None:
    source_path, plan_path = inputs
    model = scratch()
    plan_setup(source_path, plan_path, "freeze", "hold")(model)
    source = load_model(source_path)[0]
    bn = {layer.number: layer for layer in index_layers(model) if layer.family == "bn"}
    rv_before = get_tensor(model, bn[3], "RV").clone()
    model.double()  # replaces every buffer tensor, as .to(device) does on a GPU
    model.eval()
    model.train()
    model(torch.randn(2, 1, 32, 32, dtype=torch.float64)).sum().backward()
    model.float()
    for number, kind in ((1, "RM"), (1, "RV"), (2, "RM"), (2, "RV"), (3, "RM")):
        assert torch.equal(
            get_tensor(model, bn[number], kind), get_tensor(source, bn[number], kind)
        )
    assert not torch.equal(get_tensor(model, bn[3], "RV"), rv_before)  # the unfrozen twin moves
    trains, frozen = get_tensor(model, bn[1], "RW"), get_tensor(model, bn[2], "RW")
    assert trains.requires_grad and trains.grad is not None
    assert not frozen.requires_grad and frozen.grad is None


def test_bad_mode_plan_and_source_are_refused(tmp_path, inputs) -> None:
    source_path, plan_path = inputs
    with pytest.raises(PrrmseError, match="unknown mode 'thaw'"):
        plan_setup(source_path, plan_path, "thaw")
    with pytest.raises(PrrmseError, match="reuse.frozen_bn: unknown 'thaw'"):
        plan_setup(source_path, plan_path, "freeze", "thaw")

    other_arch = write_plan(tmp_path / "pspnet-plan.json", scratch(), REUSED, arch="pspnet")
    with pytest.raises(PrrmseError, match="plan made for another architecture: plan 'pspnet'"):
        plan_setup(source_path, other_arch, "freeze")(scratch())

    plan = json.loads(plan_path.read_text())
    plan["layer_counts"]["bn"] = 17
    plan["entries"] = [e for e in plan["entries"] if (e["family"], e["layer"]) != ("bn", 18)]
    fewer = tmp_path / "fewer.json"
    fewer.write_text(json.dumps(plan))
    with pytest.raises(
        PrrmseError, match="fewer.json: plan made for another architecture: plan has layer counts"
    ):
        plan_setup(source_path, fewer, "freeze")(scratch())

    wide = save_source(tmp_path / "wide.safetensors", width=8)
    with pytest.raises(
        PrrmseError,
        match=r"wide.safetensors: source does not fit .*tensor inc.double_conv.0.weight",
    ):
        plan_setup(wide, plan_path, "freeze")(scratch())

    everything = {key for _, _, key in entries_of(scratch())}
    frozen_whole = write_plan(tmp_path / "all.json", scratch(), everything)
    with pytest.raises(PrrmseError, match="all.json: freezes every parameter"):
        plan_setup(source_path, frozen_whole, "freeze")(scratch())


def test_plan_reusing_an_absent_bias_is_refused(tmp_path) -> None:
    # PSPNet without conv_bias: the stem conv 1 has no bias, so "reuse B" cannot be meant.
    torch.manual_seed(0)
    target = build_model("pspnet", conv_bias=False, ppm_channels=4, bottleneck_channels=8)
    source = tmp_path / "psp.safetensors"
    options = {"conv_bias": False, "ppm_channels": 4, "bottleneck_channels": 8}
    save_tensors(
        source, target.state_dict(), {"kind": "model", "arch": "pspnet", "options": options}
    )
    plan_path = write_plan(tmp_path / "plan.json", target, {("conv", 1, "W")}, arch="pspnet")
    plan = json.loads(plan_path.read_text())
    bias = next(
        e for e in plan["entries"] if (e["family"], e["layer"], e["kind"]) == ("conv", 1, "B")
    )
    assert bias["decision"] == "absent"
    bias["decision"] = "reuse"
    plan_path.write_text(json.dumps(plan))
    with pytest.raises(
        PrrmseError, match="plan.json: plan names kind B on conv 1, which has no bias"
    ):
        plan_setup(source, plan_path, "freeze")(target)


# --- RMSE to the ideal model (Figures 13-14) ----------------------------------------------


def test_rmse_to_ideal_table_csv_and_figures(tmp_path) -> None:
    ideal = save_unet(tmp_path / "ideal.safetensors", 1)
    runs = {
        "T1-auto finetune n50": ideal,
        "RVSC-seg freeze n10": save_unet(tmp_path / "a.safetensors", 2),
        "RVSC-seg finetune n10": save_unet(tmp_path / "b.safetensors", 3),
    }
    csv = tmp_path / "rmse" / "ideal.csv"
    table = rmse_to_ideal(ideal, runs, csv)
    assert list(table.columns) == IDEAL_COLUMNS
    assert len(table) == 3 * (18 * 4 + 19 * 2) and list(dict.fromkeys(table["run"])) == list(runs)
    itself = table["run"] == "T1-auto finetune n50"
    assert (table.loc[itself, "rmse"] == 0).all()
    # Fresh models differ in conv tensors only (BN starts at 0/1 in every seed).
    assert (table.loc[~itself & table["kind"].isin(["W", "B"]), "rmse"] > 0).all()
    stamp = read_csv_provenance(csv)
    assert set(stamp["inputs"]) == {str(p) for p in (ideal, *runs.values())}
    assert stamp["ideal"] == {"ideal": str(ideal)} and stamp["runs"][
        "RVSC-seg freeze n10"
    ].endswith("a.safetensors")
    written = pd.read_csv(csv, comment="#")
    assert list(written.columns) == IDEAL_COLUMNS and len(written) == len(table)

    subset = ["RVSC-seg freeze n10", "RVSC-seg finetune n10"]
    figure = plot_rmse_to_ideal(csv, tmp_path / "figures" / "fig14", runs_subset=subset)
    assert len(figure.axes) == 6  # RM, RV, RW, RB, W, B
    png, pdf = tmp_path / "figures" / "fig14.png", tmp_path / "figures" / "fig14.pdf"
    for path in (png, pdf):
        record = read_figure_provenance(path)
        assert record["runs"] == subset and str(csv) in record["inputs"]
    with pytest.raises(PrrmseError, match="ideal.csv: no run 'ImageNet freeze'"):
        plot_rmse_to_ideal(csv, tmp_path / "figures" / "bad", runs_subset=["ImageNet freeze"])
    assert not (tmp_path / "figures" / "bad.png").exists()
    # by number, as `prrmse figure --number 13` draws it: every run, titled by the ideal
    (tmp_path / "models" / "unet-seg-acdc-s1").mkdir(parents=True)
    named = save_unet(tmp_path / "models" / "unet-seg-acdc-s1" / "model.safetensors", 1)
    rmse_to_ideal(named, runs, tmp_path / "rmse" / "named.csv")
    figure = make_figure(13, [tmp_path / "rmse" / "named.csv"], tmp_path / "figures" / "fig13")
    assert figure.get_suptitle() == "RMSE to the ideal model (scratch s1)"
    assert read_figure_provenance(tmp_path / "figures" / "fig13.png")["runs"] == list(runs)

    # A network whose convs have no bias but the head: no B panel, never a row of zeros.
    no_bias = written.copy()
    body_b = (no_bias["kind"] == "B") & ~no_bias["head"]
    no_bias.loc[body_b, ["status", "numel", "rmse"]] = ["absent", None, None]
    no_bias.to_csv(tmp_path / "nobias.csv", index=False)
    assert len(plot_rmse_to_ideal(tmp_path / "nobias.csv", tmp_path / "fig13").axes) == 5


def test_rmse_to_ideal_names_a_run_of_another_shape(tmp_path) -> None:
    ideal = save_unet(tmp_path / "ideal.safetensors", 1)
    wide = save_unet(tmp_path / "wide.safetensors", 2, width=8)
    with pytest.raises(PrrmseError, match="wide.safetensors: models do not correspond"):
        rmse_to_ideal(ideal, {"wide": wide})
