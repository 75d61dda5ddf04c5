from . import base


class TestSmpUnet(base.BaseModelTester):
    model_name = "smp:Unet:resnet18"
    model_options = {"decoder_channels": [16, 8, 8, 8, 8]}


class TestSmpFpn(base.BaseModelTester):
    model_name = "smp:FPN:resnet18"
    model_options = {"decoder_pyramid_channels": 32, "decoder_segmentation_channels": 32}
