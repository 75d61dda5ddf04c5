from . import base


class TestUnet(base.BaseModelTester):
    model_name = "unet"
    model_options = {"width": 4}
