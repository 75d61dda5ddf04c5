import pytest

from prrmse.core.errors import PrrmseError
from prrmse.models.registry import build_model

from . import base


class TestSmpUnet(base.BaseModelTester):
    model_name = "smp:Unet:resnet18"
    model_options = {"decoder_channels": [16, 8, 8, 8, 8]}


class TestSmpFpn(base.BaseModelTester):
    model_name = "smp:FPN:resnet18"
    # FPN's segmentation blocks use GroupNorm(32, ...): widths must be multiples of 32.
    model_options = {"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32}


def test_smp_pspnet_default_depth_is_refused() -> None:
    # smp's PSPNet defaults to encoder_depth=3: layer3/4 exist but never run, never train.
    with pytest.raises(PrrmseError, match="never run in forward.*encoder.layer3"):
        build_model("smp:PSPNet:resnet18")


def test_smp_output_of_another_size_is_refused() -> None:
    with pytest.raises(PrrmseError, match=r"output is \[16, 16\]"):
        build_model("smp:PSPNet:resnet18", encoder_depth=5)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("smp:Foo:resnet18", {}, "unknown smp architecture 'Foo'; options: Unet, UnetPlusPlus"),
        ("smp:Unet:resnet1", {}, "unknown smp encoder 'resnet1'; options: resnet18, resnet34"),
        ("smp:Unet", {}, "smp networks are named smp:<Arch>:<encoder>"),
        ("smp:Unet:resnet18", {"encoder_weights": "imagenet"}, "would download"),
        ("smp:Unet:resnet18", {"decoder_chanels": [8]}, "unknown option; Unet takes"),
    ],
)
def test_bad_smp_requests_say_what_is_valid(name: str, options: dict, message: str) -> None:
    with pytest.raises(PrrmseError, match=message):
        build_model(name, **options)
