"""`prrmse import-weights`: a torchvision ResNet-18 state dict -> our encoder start file.

The weights are a randomly initialised `torchvision.models.resnet18()` saved by the test
(what a user saves from ResNet18_Weights.IMAGENET1K_V1 has the same keys and shapes).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from safetensors import safe_open

from prrmse.cli.main import main
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.naming import parse_model_name
from prrmse.models.import_weights import adapt_stem, import_resnet18
from prrmse.models.start import FILE, INDEPENDENT, resolve_start
from prrmse.models.start_model import build_start

# the encoder at full ResNet-18 size; a small pyramid and bottleneck keep the build cheap
OPTIONS = {
    "in_channels": 1,
    "classes": 4,
    "conv_bias": True,
    "ppm_channels": 8,
    "bottleneck_channels": 16,
    "output_stride": 8,
    "encoder_width": 64,
}
NETWORK = {"arch": "pspnet", "options": OPTIONS}


class NotATensor:
    """A custom class: torch.load(weights_only=True) must refuse to rebuild it."""


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(3)
    model = torchvision.models.resnet18()
    for module in model.modules():  # non-trivial BN statistics, as ImageNet weights have
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.num_batches_tracked.fill_(7)
    state = model.state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18-test.pth"
    torch.save(state, path)
    return path, state


def _network(encoder: str) -> dict:
    return {**NETWORK, "start": {"encoder": encoder, "rest": "independent"}}


def _nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp-")]


def test_imported_file_starts_pspnet_with_the_torchvision_tensors(weights, tmp_path):
    pth, state = weights
    out = tmp_path / "encoders" / "resnet18-imagenet.safetensors"
    record = import_resnet18(pth, NETWORK, out, "pspnet")

    # loaded the way training loads it: start.encoder: <file>, through prrmse.models.start
    spec = parse_model_name("pspnet-seg-acdc-s1")
    start = resolve_start(_network(str(out)), spec)
    assert start["encoder"] == {"kind": FILE, "file": str(out), "sha256": sha256_file(out)}
    model = build_start(_network(str(out)), start)
    encoder = model.encoder.state_dict()
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        expected = value.sum(dim=1, keepdim=True) if key == "conv1.weight" else value
        assert torch.equal(encoder[key], expected), key
    assert encoder["conv1.weight"].shape == (64, 1, 7, 7)
    assert not any(key.startswith("fc.") for key in encoder)

    # provenance of the source file in the safetensors metadata
    with safe_open(str(out), framework="pt") as handle:
        stored = json.loads(handle.metadata()["prrmse"])
        assert "fc.weight" not in handle.keys()  # noqa: SIM118
    assert stored == json.loads(json.dumps(record, default=str))
    assert stored["source"]["file"] == "resnet18-test.pth"
    assert stored["source"]["sha256"] == sha256_file(pth)
    assert stored["source"]["loaded_with"] == "torch.load(weights_only=True)"
    assert stored["mapping"]["dropped"] == {"fc.bias": [1000], "fc.weight": [1000, 512]}
    assert "summed over its 3 RGB input channels" in stored["mapping"]["stem"]
    assert "keeps the model's own start draw" in stored["mapping"]["stem_bias"]
    assert stored["kind"] == "encoder" and stored["recipe"] == "import"
    assert "code" in stored["provenance"]


def test_every_run_starts_as_its_config_says(weights, tmp_path):
    """Scratch and reuse runs (n10 and n50) load the file only where start.encoder names it;
    under an independent start no run ever touches it."""
    pth, _ = weights
    out = tmp_path / "enc.safetensors"
    import_resnet18(pth, NETWORK, out, "pspnet")
    digest = sha256_file(out)
    for name in ("pspnet-seg-acdc-n10-s1", "pspnet-seg-acdc-n50-s2", "pspnet-auto-t1-s1"):
        spec = parse_model_name(name)
        assert resolve_start(_network(str(out)), spec)["encoder"]["sha256"] == digest
        assert resolve_start(_network("independent"), spec)["encoder"]["kind"] == INDEPENDENT


def test_stem_adaptation_is_smps_patch_first_conv():
    from segmentation_models_pytorch.encoders._utils import patch_first_conv

    weight = torch.randn(64, 3, 7, 7)
    for channels in (1, 2, 3, 4):
        conv = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 7, bias=False))
        conv[0].weight.data.copy_(weight)
        if channels != 3:
            patch_first_conv(conv, channels, pretrained=True)
        adapted, _ = adapt_stem(weight, channels)
        assert torch.allclose(adapted, conv[0].weight.detach()), channels


def _refused(pth: Path, tmp_path: Path, network: dict = NETWORK) -> str:
    out = tmp_path / "enc.safetensors"
    with pytest.raises(PrrmseError) as info:
        import_resnet18(pth, network, out, "pspnet")
    _nothing_left(out)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda s: s.pop("layer4.1.bn2.running_var"), ("missing layer4.1.bn2.running_var",)),
        (lambda s: s.update(extra=torch.zeros(2)), ("unexpected extra",)),
        (
            lambda s: s.update({"layer2.0.conv1.weight": torch.zeros(128, 64, 1, 1)}),
            ("layer2.0.conv1.weight", "shape"),
        ),
        (lambda s: s.update({"bn1.weight": s["bn1.weight"].half()}), ("bn1.weight", "float16")),
        (lambda s: s["layer1.0.conv1.weight"].view(-1)[0].fill_(float("nan")), ("NaN",)),
        (lambda s: s.update(epoch=3), ("entry 'epoch' is a int, not a tensor",)),
    ],
    ids=["missing", "extra", "shape", "dtype", "nan", "non-tensor"],
)
def test_state_dicts_that_do_not_map_tensor_for_tensor_are_refused(weights, tmp_path, edit, words):
    _, state = weights
    bad = {key: value.clone() for key, value in state.items()}
    edit(bad)
    pth = tmp_path / "bad.pth"
    torch.save(bad, pth)
    message = _refused(pth, tmp_path)
    assert message.startswith(f"{pth}: ")
    for word in words:
        assert word in message


def test_another_architecture_is_refused(tmp_path):
    pth = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), pth)
    message = _refused(pth, tmp_path)
    assert message.startswith(f"{pth}: not a torchvision ResNet-18 state dict")
    assert "unexpected layer1.2" in message


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"conv1.weight": NotATensor()}, ("torch.load(weights_only=True) refused", "NotATensor")),
        ({"conv1.weight": print}, ("torch.load(weights_only=True) refused", "print")),
        ([torch.zeros(1)], ("holds a list, not a state dict",)),
        (
            {"state_dict": {"conv1.weight": torch.zeros(1)}},
            ("entry 'state_dict' is a dict", "model.state_dict()"),
        ),
    ],
    ids=["class-instance", "function", "list", "nested-checkpoint"],
)
def test_pickles_that_are_not_plain_tensors_are_refused(tmp_path, payload, words):
    pth = tmp_path / "pickled.pth"
    torch.save(payload, pth)
    message = _refused(pth, tmp_path)
    assert message.startswith(f"{pth}: ")
    for word in words:
        assert word in message


def test_garbage_and_missing_files_are_refused(tmp_path):
    pth = tmp_path / "junk.pth"
    pth.write_bytes(b"not a torch file")
    assert "torch.load(weights_only=True) can read" in _refused(pth, tmp_path)
    assert "weights file not found" in _refused(tmp_path / "nowhere.pth", tmp_path)


def test_target_encoder_that_is_not_a_resnet18_names_the_config_key(weights, tmp_path):
    pth, _ = weights
    narrow = {"arch": "pspnet", "options": {**OPTIONS, "encoder_width": 16}}
    message = _refused(pth, tmp_path, narrow)
    assert message.startswith("config networks.pspnet.options.encoder_width: is 16")
    message = _refused(pth, tmp_path, {"arch": "unet", "options": {"width": 4}})
    assert message.startswith("config networks.pspnet.arch: is 'unet'")


def _config(tmp_path: Path, encoder: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"networks": {"pspnet": _network(encoder)}}))
    return path


def test_cli_writes_the_start_file_the_config_names(weights, tmp_path, capsys):
    pth, _ = weights
    out = tmp_path / "data" / "encoders" / "resnet18-imagenet.safetensors"
    config = _config(tmp_path, str(out))
    assert main(["import-weights", "--config", str(config), "--pth", str(pth)]) == 0
    assert out.is_file()
    assert f"-> {out}" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_leaves_nothing(tmp_path, capsys):
    pth = tmp_path / "pickled.pth"
    torch.save({"conv1.weight": NotATensor()}, pth)
    out = tmp_path / "enc.safetensors"
    config = _config(tmp_path, str(out))
    code = main(["import-weights", "--config", str(config), "--pth", str(pth), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(f"prrmse import-weights: error: {pth}: ")
    _nothing_left(out)

    config = _config(tmp_path, "independent")
    assert main(["import-weights", "--config", str(config), "--pth", str(pth)]) == 1
    assert (
        "networks.pspnet.start.encoder: is 'independent', not a file: pass --out"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(("output_stride", "in_channels"), [(16, 1), (32, 3)])
def test_dilation_changes_no_shape_and_an_rgb_stem_is_kept(
    weights, tmp_path, output_stride, in_channels
):
    """output_stride dilates layer3/4 without changing a tensor: any stride imports; a
    3-channel network takes torchvision's stem as it is."""
    pth, state = weights
    options = {
        **OPTIONS,
        "output_stride": output_stride,
        "in_channels": in_channels,
        "conv_bias": False,
    }
    network = {
        "arch": "pspnet",
        "options": options,
        "start": {"encoder": str(tmp_path / "e.safetensors")},
    }
    import_resnet18(pth, network, tmp_path / "e.safetensors", "pspnet")
    spec = parse_model_name("pspnet-seg-acdc-s1")
    encoder = build_start(network, resolve_start(network, spec)).encoder.state_dict()
    stem = (
        state["conv1.weight"]
        if in_channels == 3
        else state["conv1.weight"].sum(dim=1, keepdim=True)
    )
    assert torch.equal(encoder["conv1.weight"], stem)
    assert torch.equal(encoder["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
