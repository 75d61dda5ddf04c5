"""Permutation alignment (weight matching): specs, function-preserving permutations, and
aligned RMSE 0 for a model against a randomly permuted copy of itself."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prrmse.analysis.align import (
    align_models,
    apply_permutations,
    random_permutations,
    weight_matching,
)
from prrmse.analysis.permutation_spec import permutation_spec, supports_alignment
from prrmse.analysis.rmse import tensor_rmse
from prrmse.core.errors import PrrmseError
from prrmse.models.registry import arch_record, build_model

# Small widths keep every test fast; PSPNet's ResNet-18 encoder is always 64..512.
ARCHS = {
    "unet": ("unet", {"width": 4}),
    "pspnet": ("pspnet", {"ppm_channels": 4, "bottleneck_channels": 8}),
    "pspnet-b": ("pspnet", {"ppm_channels": 4, "bottleneck_channels": 8, "conv_bias": True}),
}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def trained_like(key: str, seed: int) -> nn.Module:
    """A fresh model whose BN statistics and affine are random too, so every tensor tells
    channels apart (fresh BNs are all 0/1 and would hide a BN left unpermuted)."""
    arch, options = ARCHS[key]
    torch.manual_seed(seed)
    model = build_model(arch, **options)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1.0, 0.5)
                module.bias.normal_()
    return model.eval()


def rebuilt(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """A model of the same architecture holding `state`."""
    record = arch_record(model)
    copy = build_model(record["name"], **record["options"])
    copy.load_state_dict(state)
    return copy.eval()


def same_function(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 rounding: a permutation reorders the sums over channels, so the
    absolute tolerance scales with the outputs (PSPNet's reach ~6; near-zero outputs then
    differ by ~1e-5 on some CPUs' kernels)."""
    return torch.allclose(a, b, atol=1e-5 * max(1.0, float(b.abs().max())), rtol=1e-4)


def outputs(model: nn.Module) -> torch.Tensor:
    x = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("key", list(ARCHS))
def test_random_permutations_leave_the_function_unchanged(key: str) -> None:
    model = trained_like(key, 0)
    spec = permutation_spec(model)
    expected = outputs(model)
    for seed in (1, 2):
        perms = random_permutations(spec, seed)
        permuted = apply_permutations(spec, model.state_dict(), perms)
        changed = [k for k, v in permuted.items() if not torch.equal(v, model.state_dict()[k])]
        assert len(changed) > len(permuted) // 2  # the permutation really moved tensors
        assert same_function(outputs(rebuilt(model, permuted)), expected)


@pytest.mark.parametrize("key", list(ARCHS))
def test_permuted_copy_aligns_to_zero_rmse_and_same_outputs(key: str) -> None:
    model = trained_like(key, 0)
    spec = permutation_spec(model)
    copy = rebuilt(
        model, apply_permutations(spec, model.state_dict(), random_permutations(spec, 3))
    )

    table = tensor_rmse(model, copy)
    compared = table[table["status"] == "compared"]
    assert compared["rmse"].max() > 0.1
    assert compared["rmse_aligned"].max() <= 1e-6
    assert table.loc[table["status"] == "absent", "rmse_aligned"].isna().all()

    aligned, _ = align_models(model, copy)
    reference = outputs(model)
    assert same_function(outputs(rebuilt(model, aligned)), reference)
    assert same_function(outputs(copy), reference)


def _squared_distance(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: frozenset[str]
) -> float:
    return sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in keys)


@pytest.mark.parametrize("key", ["unet", "pspnet-b"])
def test_alignment_never_increases_the_total_squared_distance(key: str) -> None:
    reference, other = trained_like(key, 0), trained_like(key, 1)
    aligned, perms = align_models(reference, other, seed=5)
    ref_state, other_state = reference.state_dict(), other.state_dict()
    # the objective's tensors (every learned one): matching finds a strictly better order
    # than the identity for random models
    matched = permutation_spec(reference).matched
    assert matched == {key for key, _ in reference.named_parameters()}
    before = _squared_distance(ref_state, other_state, matched)
    assert _squared_distance(ref_state, aligned, matched) < before
    assert any(not torch.equal(p, torch.arange(len(p))) for p in perms.values())
    # and the aligned model still computes what `other` computes
    assert same_function(outputs(rebuilt(other, aligned)), outputs(other))


def test_table_sum_of_squares_is_no_larger_after_alignment() -> None:
    table = tensor_rmse(trained_like("unet", 0), trained_like("unet", 1))
    compared = table[(table["status"] == "compared") & table["kind"].isin(["W", "B", "RW", "RB"])]
    numel = compared["numel"].astype(float)
    # sum of numel * RMSE^2 over the learned tensors is the matching's squared distance
    assert (numel * compared["rmse_aligned"] ** 2).sum() < (numel * compared["rmse"] ** 2).sum()
    # the head's class channels stay put, so its bias is not moved
    head_bias = compared[compared["head"] & (compared["kind"] == "B")]
    assert (head_bias["rmse_aligned"] == head_bias["rmse"]).all()


def test_a_nearby_model_keeps_its_channel_order() -> None:
    # Models trained from one init stay close: alignment must not shuffle them.
    model = trained_like("unet", 0)
    generator = torch.Generator().manual_seed(1)
    nearby = {
        key: value + 0.01 * value.std() * torch.randn(value.shape, generator=generator)
        if value.is_floating_point() and value.numel() > 1
        else value
        for key, value in model.state_dict().items()
    }
    _, perms = align_models(model, rebuilt(model, nearby))
    assert all(torch.equal(p, torch.arange(len(p))) for p in perms.values())


def test_same_seed_gives_same_permutations() -> None:
    reference, other = trained_like("unet", 0), trained_like("unet", 1)
    spec = permutation_spec(reference)
    first = weight_matching(spec, reference.state_dict(), other.state_dict(), seed=4)
    second = weight_matching(spec, reference.state_dict(), other.state_dict(), seed=4)
    assert all(torch.equal(first[name], second[name]) for name in spec.sizes)


def test_unet_spec_shares_output_permutations_and_blocks_the_concat() -> None:
    spec = permutation_spec(trained_like("unet", 0))
    axes = spec.axes
    assert len(spec.sizes) == 18  # one per conv3x3
    assert axes["inc.double_conv.0.weight"][1] is None  # the input image's channel
    assert axes["outc.conv.weight"][0] is None and axes["outc.conv.bias"] == (None,)
    out = axes["inc.double_conv.3.weight"][0]
    assert axes["inc.double_conv.4.running_var"] == (out,) == axes["inc.double_conv.3.bias"]
    # up4 reads cat([x1 = inc's output, up3's output])
    assert axes["up4.conv.double_conv.0.weight"][1] == (
        "inc.double_conv.3",
        "up3.conv.double_conv.3",
    )
    assert axes["outc.conv.weight"][1] == ("up4.conv.double_conv.3",)


def test_pspnet_spec_shares_one_permutation_per_residual_stage() -> None:
    spec = permutation_spec(trained_like("pspnet-b", 0))
    axes = spec.axes
    stem = ("encoder.conv1",)
    assert axes["encoder.conv1.weight"][:2] == (stem, None) and axes["encoder.conv1.bias"] == (
        stem,
    )
    assert axes["encoder.layer1.1.conv2.weight"][0] == stem
    assert axes["encoder.layer1.0.bn2.bias"] == (stem,)
    stage2 = ("encoder.layer2.0.downsample.0",)
    assert axes["encoder.layer2.0.conv2.weight"][0] == stage2
    assert axes["encoder.layer2.1.bn2.running_mean"] == (stage2,)
    assert axes["encoder.layer2.0.conv1.weight"][1] == stem
    assert axes["encoder.layer2.1.conv1.weight"][0] == ("encoder.layer2.1.conv1",)
    stage4 = ("encoder.layer4.0.downsample.0",)
    bins = tuple(f"decoder.ppm.stages.{index}.conv" for index in range(4))
    assert all(axes[f"{name}.weight"][1] == stage4 for name in bins)
    assert axes["decoder.bottleneck.conv.weight"][1] == stage4 + bins
    assert axes["head.weight"][:2] == (None, ("decoder.bottleneck.conv",))
    assert axes["head.bias"] == (None,)
    # 1 stem stream + 3 downsampled streams + 8 block-internal + 4 bins + bottleneck
    assert len(spec.sizes) == 17


def test_unsupported_architectures_are_refused() -> None:
    smp_model = build_model("smp:Unet:resnet18", decoder_channels=[8, 8, 8, 8, 8])
    assert not supports_alignment(smp_model)
    with pytest.raises(PrrmseError, match="smp:Unet:resnet18: alignment is not supported"):
        align_models(smp_model, smp_model)
    with pytest.raises(PrrmseError, match="Sequential: alignment is not supported"):
        permutation_spec(nn.Sequential(nn.Conv2d(1, 4, 1)))
    # the RMSE table keeps its raw column and status, rmse_aligned stays empty
    table = tensor_rmse(smp_model, smp_model)
    assert (table.loc[table["status"] == "compared", "rmse"] == 0).all()
    assert table["rmse_aligned"].isna().all()


def test_models_of_another_width_are_refused() -> None:
    narrow = build_model("unet", width=4)
    wide = build_model("unet", width=6)
    with pytest.raises(PrrmseError, match="cannot be aligned"):
        align_models(narrow, wide)
