from . import base

TINY_DECODER = {"ppm_channels": 8, "bottleneck_channels": 16}


class TestPspnet(base.BaseModelTester):
    model_name = "pspnet"
    model_options = TINY_DECODER


class TestPspnetWithConvBias(base.BaseModelTester):
    model_name = "pspnet"
    model_options = {**TINY_DECODER, "conv_bias": True}
