import pytest
import torch

from prrmse.core.errors import PrrmseError
from prrmse.models.layers import index_layers
from prrmse.models.registry import build_model

from . import base


class TestUnet(base.BaseModelTester):
    model_name = "unet"
    model_options = {"width": 4}


def test_odd_sizes_come_back_at_input_size() -> None:
    # pooling floors odd sizes; the up blocks pad back to each skip's size (2019 behaviour)
    torch.manual_seed(0)
    model = build_model("unet", width=2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 37, 50)).shape == (1, 4, 37, 50)


def test_wrong_input_channels_give_a_one_line_error() -> None:
    with pytest.raises(PrrmseError, match=r"forward fails on a \[1, 3, 64, 64\] input"):
        index_layers(build_model("unet", width=2), input_shape=(1, 3, 64, 64))
