from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from prrmse.core.errors import PrrmseError
from prrmse.models.registry import build_model

from . import base

TINY_DECODER = {"ppm_channels": 8, "bottleneck_channels": 16}


class TestPspnet(base.BaseModelTester):
    model_name = "pspnet"
    model_options = TINY_DECODER


class TestPspnetWithConvBias(base.BaseModelTester):
    model_name = "pspnet"
    model_options = {**TINY_DECODER, "conv_bias": True}


def _build(seed: int, **options: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("pspnet", **TINY_DECODER, **options)


def _encoder_file(tmp_path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def test_local_encoder_weights_round_trip(tmp_path: Path) -> None:
    source = _build(seed=1).encoder.state_dict()
    path = _encoder_file(tmp_path, source)
    loaded = _build(seed=2, encoder_weights=path)
    assert loaded.prrmse_arch["options"]["encoder_weights"] == str(path)
    for key, value in loaded.encoder.state_dict().items():
        assert torch.equal(value, source[key]), key
    # only the encoder comes from the file: the decoder is the seed's
    assert torch.equal(
        loaded.decoder.bottleneck.conv.weight, _build(seed=2).decoder.bottleneck.conv.weight
    )


def test_imagenet_style_file_is_accepted(tmp_path: Path) -> None:
    # torchvision layout: an RGB stem and an fc classifier; the stem is summed to grayscale
    source = _build(seed=1).encoder.state_dict()
    rgb = torch.randn(64, 3, 7, 7)
    tensors = {**source, "conv1.weight": rgb, "fc.weight": torch.zeros(1000, 512)}
    loaded = _build(seed=2, encoder_weights=_encoder_file(tmp_path, tensors), conv_bias=True)
    assert torch.allclose(loaded.encoder.conv1.weight, rgb.sum(dim=1, keepdim=True))


def test_bad_encoder_weights_name_the_file_and_problem(tmp_path: Path) -> None:
    with pytest.raises(PrrmseError, match="encoder weights file not found"):
        _build(seed=0, encoder_weights=tmp_path / "missing.safetensors")
    source = _build(seed=1).encoder.state_dict()
    del source["layer4.1.bn2.weight"]
    with pytest.raises(PrrmseError, match="missing layer4.1.bn2.weight, unexpected none"):
        _build(seed=0, encoder_weights=_encoder_file(tmp_path, source))
    source = {**_build(seed=1).encoder.state_dict(), "layer1.0.conv1.weight": torch.zeros(3)}
    with pytest.raises(PrrmseError, match=r"layer1.0.conv1.weight has shape \[3\]"):
        _build(seed=0, encoder_weights=_encoder_file(tmp_path, source))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(PrrmseError, match="not a readable safetensors file"):
        _build(seed=0, encoder_weights=junk)


def test_training_on_one_image_says_why_it_cannot() -> None:
    model = _build(seed=0).train()
    with pytest.raises(PrrmseError, match="batch of at least 2 images"):
        model(torch.randn(1, 1, 64, 64))


def test_output_stride_8_keeps_every_layer_and_a_finer_pyramid():
    from prrmse.models.layers import index_layers

    coarse = build_model("pspnet", output_stride=32)
    fine = build_model("pspnet", output_stride=8)
    seen = {}
    fine.decoder.register_forward_pre_hook(lambda m, args: seen.update(x=args[0][-1].shape))
    fine.eval()(torch.zeros(1, 1, 48, 48))
    assert seen["x"][-2:] == (6, 6)
    counts = [
        (sum(1 for layer in index_layers(m) if layer.family == f))
        for m in (coarse, fine)
        for f in ("bn", "conv")
    ]
    assert counts == [25, 26, 25, 26]
    with pytest.raises(PrrmseError, match="output_stride"):
        build_model("pspnet", output_stride=4)


class TestNarrowPspnet(base.BaseModelTester):
    model_name = "pspnet"
    model_options = {**TINY_DECODER, "encoder_width": 8, "conv_bias": True}


def test_narrow_encoder_is_resnet18_with_every_layer_in_proportion():
    from prrmse.models.layers import index_layers

    full, narrow = _build(seed=0), _build(seed=0, encoder_width=16)
    assert narrow.encoder.out_channels == [1, 16, 16, 32, 64, 128]
    # the same module tree (names, kinds, forward order): only channel counts differ
    full_layers, narrow_layers = index_layers(full), index_layers(narrow)
    assert [(x.family, x.module_name) for x in full_layers] == [
        (x.family, x.module_name) for x in narrow_layers
    ]
    assert len([x for x in narrow_layers if x.family == "bn"]) == 25
    wide = full.encoder.state_dict()
    for name, tensor in narrow.encoder.state_dict().items():
        assert tensor.ndim == wide[name].ndim, name
        if tensor.ndim:  # every channel count a quarter (the stem's 1 input channel kept)
            assert tensor.shape[0] * 4 == wide[name].shape[0], name
    assert narrow.encoder.layer4[0].conv1.dilation == (4, 4)  # output stride 8, as the full one
    # torchvision's initialisation: BN at 1 / 0, convs drawn (kaiming, fan out)
    assert torch.equal(narrow.encoder.bn1.weight, torch.ones(16))
    std = narrow.encoder.layer2[0].conv1.weight.std().item()
    assert abs(std - (2 / (32 * 9)) ** 0.5) < 0.01
    # and the default is exactly smp's ResNet-18 (checkpoints of before stay valid)
    assert full.prrmse_arch["options"]["encoder_width"] == 64
    assert full.encoder.out_channels == [1, 64, 64, 128, 256, 512]
    with pytest.raises(PrrmseError, match="encoder_width"):
        build_model("pspnet", encoder_width=0)
