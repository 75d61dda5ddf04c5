"""Start regimes (issue 14): which tensors start shared, which independent, and the records."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prrmse.analysis.sweep.controls import control_source
from prrmse.core import provenance
from prrmse.core.config import validate_config
from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.core.naming import parse_model_name
from prrmse.data.settings import phantoms_settings, prepare_settings
from prrmse.models.checkpoint import load_model, load_tensors
from prrmse.models.registry import build_model
from prrmse.models.start import legacy_start, model_identity, resolve_start, start_seed
from prrmse.models.start_model import build_start
from prrmse.results.floor import check_regimes, run_noise_floor
from prrmse.training.encoder import make_shared_encoder
from prrmse.training.settings import encoder_settings, network_entry, train_settings
from prrmse.training.train import initial_model, train_model
from tests.conftest import TINY_CONFIG
from tests.results.test_summary import _rmse, _write

SMALL = {"conv_bias": False, "ppm_channels": 4, "bottleneck_channels": 8}
PSPNET = {"arch": "pspnet", "options": SMALL}


def encoder_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if k.startswith("encoder.")}


def rest_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")}


def drawn(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Randomly initialised tensors (conv weights); BN starts at 0/1 in every draw."""
    return [k for k, v in tensors.items() if v.ndim == 4]


def same(a: dict, b: dict, keys: list[str]) -> list[bool]:
    return [torch.equal(a[k], b[k]) for k in keys]


def config_with(start: dict | None = None, **encoders) -> dict:
    config = copy.deepcopy(TINY_CONFIG)
    config["networks"]["pspnet"] = {**PSPNET, **({"start": start} if start else {})}
    config["encoders"] = {"pspnet": encoders} if encoders else {}
    config["train"].update(epochs=1, iterations_per_epoch=2)
    return validate_config(config)


def make_encoder(config: dict, out: Path, network: str = "pspnet") -> dict:
    """`prrmse encoder` on a validated config: its settings built as the verb builds them."""
    return make_shared_encoder(
        network,
        encoder_settings(config, network),
        network_entry(config, network, f"network {network}"),
        out,
        train=train_settings(config),
        phantoms=phantoms_settings(config),
        prepare=prepare_settings(config),
        log=lambda _: None,
    )


def train(spec, config: dict, data: Path, out: Path, **kwargs) -> dict:
    """`prrmse train` on a validated config."""
    network = config["networks"][spec.network]
    return train_model(
        spec, train_settings(config), network, data, out, log=lambda _: None, **kwargs
    )


@pytest.fixture(scope="module")
def shared_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("encoders") / "pspnet.safetensors"
    make_encoder(config_with(recipe="random", seed=3), out)
    return out


def test_independent_starts_are_keyed_by_task_and_seed_apart_from_the_data_seed():
    names = ["pspnet-seg-acdc-s1", "pspnet-auto-acdc-s1", "pspnet-seg-t1-s1", "pspnet-seg-acdc-s2"]
    starts = {n: resolve_start(PSPNET, parse_model_name(n)) for n in names}
    seeds = [s["rest"]["seed"] for s in starts.values()]
    assert len(set(seeds)) == 4 and all(0 <= s < 2**31 for s in seeds)
    for start in starts.values():
        assert start["encoder"] == start["rest"] and start["rest"]["kind"] == "independent"
    assert seeds[0] != 1 and seeds[0] == start_seed("pspnet-seg-acdc", 1)  # not the data seed
    # a subset model of one task and seed starts where the full one does (reuse runs pair)
    subset = resolve_start(PSPNET, parse_model_name("pspnet-seg-acdc-n10-s1"))
    assert subset == starts["pspnet-seg-acdc-s1"]
    assert model_identity(parse_model_name("pspnet-seg-acdc-n10-s1")) == "pspnet-seg-acdc"

    models = {n: initial_model(PSPNET, s) for n, s in starts.items()}
    first = models[names[0]]
    for name in names[1:]:
        for part in (encoder_of, rest_of):
            keys = drawn(part(first))
            assert not any(same(part(first), part(models[name]), keys)), (name, part.__name__)
    again = initial_model(PSPNET, starts[names[0]])
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())


def test_a_shared_encoder_is_the_start_of_every_model_and_seed(shared_file):
    network = config_with({"encoder": "shared"})["networks"]["pspnet"]
    file_tensors = load_file(str(shared_file))
    names = ["pspnet-seg-acdc-s1", "pspnet-auto-t1-s1", "pspnet-seg-acdc-s2"]
    models = {}
    for name in names:
        start = resolve_start(network, parse_model_name(name), shared_file)
        assert start["encoder"] == {
            "kind": "shared",
            "file": str(shared_file),
            "sha256": sha256_file(shared_file),
        }
        assert start["rest"] == {
            "kind": "independent",
            "seed": start_seed(name[:-3], int(name[-1])),
        }
        models[name] = initial_model(network, start)
        encoder = encoder_of(models[name])
        # every encoder tensor (BN buffers included) is the file's
        assert set(encoder) == {f"encoder.{k}" for k in file_tensors}
        assert all(torch.equal(encoder[f"encoder.{k}"], v) for k, v in file_tensors.items())
    first = rest_of(models[names[0]])
    for name in names[1:]:
        assert not any(same(first, rest_of(models[name]), drawn(first))), name
    # the rest starts where an independent start of the same model would have
    independent = initial_model(PSPNET, resolve_start(PSPNET, parse_model_name(names[0])))
    assert all(same(first, rest_of(independent), list(first)))


def test_a_local_encoder_file_is_recorded_as_a_file_start(shared_file, tmp_path):
    network = {**PSPNET, "start": {"encoder": str(shared_file)}}
    start = resolve_start(network, parse_model_name("pspnet-seg-acdc-s1"))
    assert start["encoder"]["kind"] == "file" and start["encoder"]["file"] == str(shared_file)
    model = initial_model(network, start)
    file_tensors = load_file(str(shared_file))
    assert all(torch.equal(model.state_dict()[f"encoder.{k}"], v) for k, v in file_tensors.items())


def test_bad_start_configurations_are_refused_with_the_file_or_key(shared_file, tmp_path):
    spec = parse_model_name("pspnet-seg-acdc-s1")
    shared = {**PSPNET, "start": {"encoder": "shared"}}
    with pytest.raises(PrrmseError, match=r"networks.pspnet.start.encoder: is 'shared'"):
        resolve_start(shared, spec)
    with pytest.raises(PrrmseError, match="pspnet.safetensors: a shared encoder file was given"):
        resolve_start(PSPNET, spec, shared_file)
    missing = tmp_path / "absent.safetensors"
    with pytest.raises(PrrmseError, match="absent.safetensors: encoder start file not found"):
        resolve_start({**PSPNET, "start": {"encoder": str(missing)}}, spec)
    both = {
        "arch": "pspnet",
        "options": {**SMALL, "encoder_weights": str(shared_file)},
        "start": {"encoder": str(shared_file)},
    }
    with pytest.raises(PrrmseError, match="options.encoder_weights both give the encoder"):
        resolve_start(both, spec)
    unet = {"arch": "unet", "options": {"width": 4}, "start": {"encoder": str(shared_file)}}
    start = resolve_start(unet, parse_model_name("unet-seg-acdc-s1"))
    with pytest.raises(PrrmseError, match="pspnet.safetensors: the network has no 'encoder' part"):
        initial_model(unet, start)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not tensors")
    start = resolve_start({**PSPNET, "start": {"encoder": str(bad)}}, spec)
    with pytest.raises(PrrmseError, match="bad.safetensors: not a readable safetensors file"):
        initial_model(PSPNET, start)


def test_training_records_the_start_and_reinit_rebuilds_it_exactly(
    shared_file, tiny_data, tmp_path
):
    config = config_with({"encoder": "shared"})
    started = {}

    def capture(model):
        started.update({k: v.clone() for k, v in model.state_dict().items()})
        return {}

    spec = parse_model_name("pspnet-seg-acdc-s2")
    record = train(
        spec, config, tiny_data, tmp_path / "m", setup=capture, shared_encoder=shared_file
    )
    _, saved = load_tensors(tmp_path / "m" / "model.safetensors")
    assert saved["start"] == record["start"]
    assert saved["start"]["encoder"]["kind"] == "shared"
    assert saved["start"]["encoder"]["sha256"] == sha256_file(shared_file)
    assert saved["start"]["rest"] == {
        "kind": "independent",
        "seed": start_seed("pspnet-seg-acdc", 2),
    }
    network = {"arch": saved["arch"], "options": saved["options"]}
    reinit = control_source("reinit", network, saved["start"]).state_dict()
    assert all(torch.equal(reinit[k], v) for k, v in started.items())
    rerandom = control_source("rerandom", network, saved["start"]).state_dict()
    encoder_keys = drawn({k: v for k, v in rerandom.items() if k.startswith("encoder.")})
    assert not any(torch.equal(rerandom[k], started[k]) for k in encoder_keys)
    # a start file changed since training: reinit cannot rebuild it, and says so
    changed = tmp_path / "changed.safetensors"
    changed.write_bytes(shared_file.read_bytes() + b" ")
    moved = {**saved["start"], "encoder": {**saved["start"]["encoder"], "file": str(changed)}}
    with pytest.raises(PrrmseError, match="changed.safetensors: encoder start file changed"):
        control_source("reinit", network, moved)
    # a shared start without its file is refused before any data is read
    with pytest.raises(PrrmseError, match="is 'shared'"):
        train(spec, config, tiny_data, tmp_path / "n")


def test_legacy_checkpoints_start_from_their_seed():
    torch.manual_seed(5)
    expected = build_model("unet", width=4).state_dict()
    rebuilt = build_start({"arch": "unet", "options": {"width": 4}}, legacy_start(5)).state_dict()
    assert all(torch.equal(rebuilt[k], v) for k, v in expected.items())


def test_pretext_encoder_trains_on_a_pool_apart_from_every_dataset(tmp_path):
    config = config_with(
        {"encoder": "shared"},
        recipe="pretext",
        seed=1,
        task="seg",
        pool={"n_patients": 3, "n_val": 1, "seed": 99},
        epochs=1,
        iterations_per_epoch=1,
    )
    config["phantoms"]["acdc"].update(n_slices=2, shape=[40, 40], spacing_mm=[2.6, 3.2])
    config["prepare"].update(shape=[32, 32], spacing_mm=3.0)
    config["train"]["batch_size"] = 2
    out = tmp_path / "encoders" / "pspnet.safetensors"
    record = make_encoder(config, out)
    tensors, saved = load_tensors(out)
    assert saved["recipe"] == "pretext" and saved["pool"]["seed"] == 99
    assert saved["pretext_model"]["name"] == "pspnet-seg-pretext-s1"
    assert saved["pretext_model"]["start"]["encoder"]["kind"] == "independent"
    assert saved["pool"]["split"] == {"method": "random", "n_train": 2, "n_val": 1, "seed": 99}
    assert record["pool"]["phantoms"]["n_patients"] == 3
    model = build_start(PSPNET, legacy_start(1))
    assert set(tensors) == {k.removeprefix("encoder.") for k in encoder_of(model)}
    assert [p.name for p in out.parent.iterdir()] == ["pspnet.safetensors"]  # no pool left
    # the pool's folder name is fixed, so a rerun writes the same bytes (its index's hash is
    # in the record)
    first = out.read_bytes()
    make_encoder(config, out)
    assert out.read_bytes() == first
    config["encoders"]["pspnet"]["pool"]["seed"] = config["phantoms"]["seed"]
    with pytest.raises(PrrmseError, match="pool.seed: equals phantoms.seed"):
        make_encoder(config, tmp_path / "again.safetensors")
    unet_only = copy.deepcopy(config)
    unet_only["encoders"] = {}
    with pytest.raises(PrrmseError, match="encoders.pspnet: missing"):
        make_encoder(unet_only, tmp_path / "x.safetensors")


def test_floor_refuses_seed_pairs_under_another_start_regime(tmp_path, shared_file):
    shared = resolve_start(
        {**PSPNET, "start": {"encoder": "shared"}},
        parse_model_name("pspnet-seg-acdc-s1"),
        shared_file,
    )
    other = resolve_start(PSPNET, parse_model_name("pspnet-seg-acdc-s2"))

    def table(name: str, a: str, b: str, starts: dict) -> Path:
        return _write(tmp_path / name, _rmse(a, b, [0.1, 0.2, 0.3]), what="rmse", starts=starts)

    good = [
        table(
            "a.csv",
            "pspnet-seg-acdc-s1",
            "pspnet-seg-acdc-s2",
            {"pspnet-seg-acdc-s1": shared, "pspnet-seg-acdc-s2": shared},
        ),
        table(
            "b.csv",
            "pspnet-auto-t1-s1",
            "pspnet-auto-t1-s2",
            {"pspnet-auto-t1-s1": shared, "pspnet-auto-t1-s2": shared},
        ),
    ]
    out = tmp_path / "floor.csv"
    run_noise_floor(good, out)
    regime = provenance.read_csv_provenance(out)["start_regime"]["pspnet"]
    assert regime == {"encoder": f"shared:{sha256_file(shared_file)}", "rest": "independent"}
    mixed = table(
        "c.csv",
        "pspnet-seg-t1-s1",
        "pspnet-seg-t1-s2",
        {"pspnet-seg-t1-s1": shared, "pspnet-seg-t1-s2": other},
    )
    with pytest.raises(PrrmseError, match="c.csv: pspnet-seg-t1-s2 started under"):
        check_regimes([*good, mixed])
    with pytest.raises(PrrmseError, match="not compare like with like"):
        run_noise_floor([*good, mixed], tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()


def test_checkpoint_start_round_trips_through_load_model(shared_file, tiny_data, tmp_path):
    config = config_with()
    train(parse_model_name("unet-seg-acdc-s1"), config, tiny_data, tmp_path / "u")
    _, record = load_model(tmp_path / "u" / "model.safetensors")
    assert record["start"] == resolve_start(
        config["networks"]["unet"], parse_model_name("unet-seg-acdc-s1")
    )
    assert {part["kind"] for part in record["start"].values()} == {"independent"}
