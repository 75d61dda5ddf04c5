"""The layer index: the paper's counts and numbering, forward order, live tensors."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from prrmse.core.errors import PrrmseError
from prrmse.models.layers import (
    KIND_ATTR,
    find_layer,
    get_tensor,
    index_layers,
    iter_tensors,
    layer_label,
)
from prrmse.models.registry import build_model, model_names, model_signature, signature_mismatch

TINY_PSP = {"ppm_channels": 8, "bottleneck_channels": 16}


def _build(name: str, **options: object) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, **options)


@pytest.fixture(scope="module")
def unet() -> nn.Module:
    return _build("unet", width=4)


@pytest.fixture(scope="module")
def pspnet() -> nn.Module:
    return _build("pspnet", **TINY_PSP)


@pytest.fixture(scope="module")
def pspnet_b() -> nn.Module:
    return _build("pspnet", conv_bias=True, **TINY_PSP)


def _family(layers: list, family: str) -> list:
    return [layer for layer in layers if layer.family == family]


def test_unet_has_18_bn_and_18_convs_plus_head(unet: nn.Module) -> None:
    layers = index_layers(unet)
    bns, convs = _family(layers, "bn"), _family(layers, "conv")
    assert [layer.number for layer in bns] == list(range(1, 19))
    assert [layer.number for layer in convs] == list(range(1, 20))
    assert [layer.head for layer in convs] == [False] * 18 + [True]
    assert convs[-1].module_name == "outc.conv"
    assert convs[0].module_name == "inc.double_conv.0"
    # the 2019 UNet's 3x3 convs all have a bias
    assert all(layer.kinds == ("W", "B") and layer.absent == () for layer in convs)
    assert all(layer.kinds == ("RM", "RV", "RW", "RB") for layer in bns)


def test_pspnet_has_25_bn_and_25_convs_plus_head(pspnet: nn.Module) -> None:
    layers = index_layers(pspnet)
    assert len(_family(layers, "bn")) == 25
    convs = _family(layers, "conv")
    assert len(convs) == 26 and convs[-1].head and convs[-1].module_name == "head"
    assert not any(layer.head for layer in convs[:-1])


def test_pspnet_numbering_is_the_papers(pspnet: nn.Module) -> None:
    layers = index_layers(pspnet)
    conv = {layer.number: layer.module_name for layer in _family(layers, "conv")}
    bn = {layer.number: layer.module_name for layer in _family(layers, "bn")}
    assert conv[1] == "encoder.conv1"  # the stem
    for number, stage in ((6, 2), (11, 3), (16, 4)):
        assert conv[number] == f"encoder.layer{stage}.0.conv1"  # first conv, stride 2
        assert conv[number + 2] == f"encoder.layer{stage}.0.downsample.0"
    assert (conv[19], conv[20]) == ("encoder.layer4.1.conv1", "encoder.layer4.1.conv2")
    assert [conv[n] for n in range(21, 26)] == [
        *(f"decoder.ppm.stages.{i}.conv" for i in range(4)),
        "decoder.bottleneck.conv",
    ]
    assert (bn[1], bn[17], bn[25]) == (
        "encoder.bn1",
        "encoder.layer4.0.bn2",
        "decoder.bottleneck.bn",
    )


def test_pspnet_bias_is_absent_except_on_the_head(pspnet: nn.Module) -> None:
    for layer in _family(index_layers(pspnet), "conv"):
        if layer.head:
            assert layer.kinds == ("W", "B")
        else:
            assert layer.kinds == ("W",) and layer.absent == ("B",), layer
            with pytest.raises(PrrmseError, match=rf"conv {layer.number}: B is absent"):
                get_tensor(pspnet, layer, "B")


def test_pspnet_b_has_bias_on_the_non_resnet_convs(pspnet_b: nn.Module) -> None:
    with_bias = {
        layer.number for layer in _family(index_layers(pspnet_b), "conv") if "B" in layer.kinds
    }
    assert with_bias == {1, 21, 22, 23, 24, 25, 26}


class _CalledOutOfOrder(nn.Module):
    """Registers `late` before `early`, and calls `shared` twice."""

    def __init__(self) -> None:
        super().__init__()
        self.late = nn.Conv2d(3, 2, 1)
        self.late_bn = nn.BatchNorm2d(2)
        self.shared = nn.Conv2d(3, 3, 1, bias=False)
        self.early = nn.Conv2d(1, 3, 1)
        self.early_bn = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shared(self.early_bn(self.early(x)))
        return self.late_bn(self.late(self.shared(x)))


def test_numbering_follows_calls_not_registration() -> None:
    model = _CalledOutOfOrder()
    layers = index_layers(model, head="late")
    assert [(layer_label(x), x.module_name) for x in layers] == [
        ("BN 1", "early_bn"),
        ("BN 2", "late_bn"),
        ("conv 1", "early"),
        ("conv 2", "shared"),  # called twice, counted once, at its first call
        ("conv head", "late"),
    ]
    assert [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)] == [
        "late",
        "shared",
        "early",
    ]


def test_unet_index_ignores_registration_order(unet: nn.Module) -> None:
    shuffled = _build("unet", width=4)
    shuffled._modules = OrderedDict(reversed(list(shuffled._modules.items())))
    registered = [n for n, m in shuffled.named_modules() if isinstance(m, nn.Conv2d)]
    assert registered[0] == "outc.conv" and registered[-1] == "inc.double_conv.3"
    assert index_layers(shuffled) == index_layers(unet)


def test_head_defaults_to_last_conv_with_the_output_channels() -> None:
    model = _CalledOutOfOrder()  # output has 2 channels, `late` is the only 2-channel conv
    assert find_layer(index_layers(model), "conv", "head").module_name == "late"
    with pytest.raises(PrrmseError, match="not a Conv2d run"):
        index_layers(model, head="early_bn")


def test_layers_that_never_run_are_refused() -> None:
    model = _CalledOutOfOrder()
    model.spare = nn.Conv2d(1, 1, 1)
    with pytest.raises(PrrmseError, match="never run in forward.*spare"):
        index_layers(model)
    assert len(index_layers(model, allow_unused=True)) == 5


def test_probe_restores_modes_and_leaves_statistics(unet: nn.Module) -> None:
    unet.train()
    unet.inc.double_conv[1].eval()
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    index_layers(unet)
    assert unet.training and not unet.inc.double_conv[1].training
    assert unet.down1.training
    assert all(torch.equal(v, unet.state_dict()[k]) for k, v in before.items())
    unet.eval()


def test_get_tensor_is_live(pspnet: nn.Module) -> None:
    layers = index_layers(pspnet)
    x = torch.randn(1, 1, 64, 64)
    pspnet.eval()
    with torch.no_grad():
        before = pspnet(x)
        head_bias = get_tensor(pspnet, find_layer(layers, "conv", "head"), "B")
        running_mean = get_tensor(pspnet, find_layer(layers, "bn", 25), "RM")
        assert running_mean is pspnet.decoder.bottleneck.bn.running_mean
        saved = head_bias.clone()
        head_bias.add_(1.0)
        assert torch.allclose(pspnet(x), before + 1.0, atol=1e-5)
        head_bias.copy_(saved)
        assert torch.equal(pspnet(x), before)


def test_kinds_map_to_attributes(unet: nn.Module) -> None:
    layers = index_layers(unet)
    bn, conv = find_layer(layers, "bn", 3), find_layer(layers, "conv", 3)
    module = unet.get_submodule(bn.module_name)
    for kind in ("RM", "RV", "RW", "RB"):
        assert get_tensor(unet, bn, kind) is getattr(module, KIND_ATTR[kind])
    assert get_tensor(unet, conv, "W") is unet.get_submodule(conv.module_name).weight
    with pytest.raises(PrrmseError, match=r"BN 3: has no kind 'W'"):
        get_tensor(unet, bn, "W")
    with pytest.raises(PrrmseError, match="no such layer; this model has 18 bn layers"):
        find_layer(layers, "bn", 19)


def test_iter_tensors_leaves_the_head_out_unless_asked(pspnet: nn.Module) -> None:
    layers = index_layers(pspnet)
    entries = list(iter_tensors(pspnet, layers))
    assert len(entries) == 25 * 4 + 25  # BN: RM RV RW RB; conv: W (B absent)
    assert not any(layer.head for layer, _, _ in entries)
    with_head = list(iter_tensors(pspnet, layers, include_head=True))
    assert [(layer_label(layer), kind) for layer, kind, _ in with_head[-2:]] == [
        ("conv head", "W"),
        ("conv head", "B"),
    ]


def test_labels() -> None:
    layers = index_layers(_CalledOutOfOrder(), head="late")
    assert [layer_label(layer) for layer in layers] == [
        "BN 1",
        "BN 2",
        "conv 1",
        "conv 2",
        "conv head",
    ]


def test_unknown_network_lists_the_valid_names() -> None:
    with pytest.raises(
        PrrmseError, match=r"unknown network; valid names: unet, pspnet, smp:<Arch>:<encoder>"
    ):
        build_model("resnet")
    assert model_names() == ["unet", "pspnet", "smp:<Arch>:<encoder>"]
    with pytest.raises(PrrmseError, match="unet option widht: unknown option"):
        build_model("unet", widht=8)
    with pytest.raises(PrrmseError, match="must be a positive integer"):
        build_model("unet", width=0)


def test_signature_tells_architectures_apart(
    pspnet: nn.Module, pspnet_b: nn.Module, unet: nn.Module
) -> None:
    plain = model_signature(pspnet)
    assert plain["arch"] == "pspnet" and plain["options"]["conv_bias"] is False
    first = plain["tensors"][0]
    assert first == {"layer": "BN 1", "module": "encoder.bn1", "kind": "RM", "shape": [64]}
    assert signature_mismatch(plain, model_signature(_build("pspnet", **TINY_PSP))) is None
    assert (
        "conv 1 B is encoder.conv1 shape [64], expected encoder.conv1 absent"
        == signature_mismatch(plain, model_signature(pspnet_b))
    )
    assert "architecture 'unet'" in signature_mismatch(plain, model_signature(unet))
