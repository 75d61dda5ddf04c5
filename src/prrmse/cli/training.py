"""`prrmse <verb>` for training: one model, the shared encoder start, ImageNet weights, the reuse runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prrmse.cli.common import config_arg, flag
from prrmse.core.errors import PrrmseError
from prrmse.core.naming import network_of_name


def _run_train(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.core.naming import parse_model_name
    from prrmse.training.settings import network_entry, train_settings
    from prrmse.training.train import train_model

    config = load_config(args.config)
    spec = parse_model_name(args.model)
    network = network_entry(config, spec.network, f"model {spec.name}")
    record = train_model(
        spec,
        train_settings(config, str(args.config)),
        network,
        args.data,
        args.out,
        threads=args.threads,
        shared_encoder=args.shared_encoder,
        resume_every_s=args.resume_every,
        same_run_checkpoint=args.same_run_checkpoint,
    )
    scores = record["metrics"]
    shown = (
        "Dice " + " ".join(f"{d:.3f}" for d in scores["dice"])
        if "dice" in scores
        else f"MSE {scores['mse']:.5f}"
    )
    print(
        f"train {spec.name}: model of epoch {record['best_epoch']} ({record['selection']['rule']}), "
        f"validation {shown} -> {args.out}"
    )


def _run_encoder(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.data.settings import phantoms_settings, prepare_settings
    from prrmse.training.encoder import make_shared_encoder
    from prrmse.training.settings import encoder_settings, network_entry, train_settings

    config = load_config(args.config)
    source = str(args.config)
    recipe = encoder_settings(config, args.network, source)
    network = network_entry(config, args.network, f"network {args.network}")
    train = train_settings(config, source)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    make_shared_encoder(
        args.network,
        recipe,
        network,
        args.out,
        train=train,
        phantoms=phantoms_settings(config, source),
        prepare=prepare_settings(config, source),
        threads=args.threads,
    )


def _run_import_weights(args: argparse.Namespace) -> None:
    from prrmse.core.config import load_config
    from prrmse.models.import_weights import import_resnet18
    from prrmse.models.start import start_config

    config = load_config(args.config)
    networks = config["networks"]
    if args.network not in networks:
        known = ", ".join(sorted(networks)) or "none"
        raise PrrmseError(
            args.config, f"no networks entry '{args.network}' (config defines: {known})"
        )
    named = start_config(networks[args.network])["encoder"]
    out = args.out
    if out is None:
        if named in ("independent", "shared"):
            raise PrrmseError(
                f"{args.config}: config key networks.{args.network}.start.encoder",
                f"is {named!r}, not a file: pass --out",
            )
        out = Path(named)
    record = import_resnet18(
        args.pth,
        networks[args.network],
        out,
        args.network,
        where=f"{args.config}: config key networks.{args.network}",
    )
    note = (
        "" if Path(named) == Path(out) else f" (networks.{args.network}.start.encoder is {named!r})"
    )
    print(
        f"import-weights {args.network}: {record['mapping']['tensors']} encoder tensors of "
        f"{args.pth.name} (sha256 {record['source']['sha256'][:12]}), {record['mapping']['stem']}, "
        f"fc dropped -> {out}{note}"
    )


def _run_reuse(args: argparse.Namespace) -> None:
    from prrmse.analysis.reuse import plan_setup
    from prrmse.core.config import load_config
    from prrmse.core.naming import parse_run_name
    from prrmse.training.settings import network_entry, train_settings
    from prrmse.training.train import train_model

    config = load_config(args.config)
    run = parse_run_name(args.run)
    if run.source is None:
        raise PrrmseError(
            args.run, "a reuse run is named <model>-<freeze|finetune|selffer>-from-<source>"
        )
    settings = train_settings(config, str(args.config))
    network = network_entry(config, run.model.network, f"model {run.model.name}")
    setup = plan_setup(args.source_checkpoint, args.plan, run.mode, config["reuse"]["frozen_bn"])
    extra = {"reuse": {"run": run.name, "mode": run.mode, "source": run.source}}
    record = train_model(
        run.model,
        settings,
        network,
        args.data,
        args.out,
        threads=args.threads,
        setup=setup,
        extra_record=extra,
        shared_encoder=args.shared_encoder,
        resume_every_s=args.resume_every,
    )
    dice = " ".join(f"{d:.3f}" for d in record["metrics"]["dice"])
    print(
        f"reuse {run.name}: model of epoch {record['best_epoch']} ({record['selection']['rule']}), "
        f"validation Dice {dice} -> {args.out}"
    )


def _resume_every_arg(parser: argparse.ArgumentParser) -> None:
    from prrmse.training.settings import RESUME_EVERY_S

    parser.add_argument(
        "--resume-every",
        type=float,
        default=RESUME_EVERY_S,
        metavar="SECONDS",
        help="write the resume state at the first epoch end SECONDS after the last "
        "(0: every epoch); the outputs do not depend on it",
    )


def register(verbs: Any) -> None:
    _add_train(verbs)
    _add_encoder(verbs)
    _add_import_weights(verbs)
    _add_reuse(verbs)


def _add_train(verbs: Any) -> None:
    train = verbs.add_parser("train", help="train one model of the study (resumes a killed run)")
    config_arg(train, lambda a: ["train", f"networks.{network_of_name(a.model)}"])
    train.add_argument("--model", required=True, help="<network>-<task>-<dataset>[-n<N>]-s<seed>")
    train.add_argument("--data", type=Path, required=True, help="prepared dataset folder")
    train.add_argument("--out", type=Path, required=True, help="model folder to write")
    train.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    _resume_every_arg(train)
    train.add_argument(
        "--shared-encoder",
        type=Path,
        default=None,
        help="the network's shared encoder start (start.encoder: shared)",
    )
    train.add_argument(
        "--same-run-checkpoint",
        type=Path,
        default=None,
        help="a trained model's checkpoint that may be this very run (a subset of every "
        "training patient): taken if its record agrees, else the model is trained",
    )
    train.set_defaults(handler=_run_train)


def _add_encoder(verbs: Any) -> None:
    encoder = verbs.add_parser(
        "encoder", help="make a network's shared encoder start (config encoders.<network>)"
    )
    # the shared encoder start: its recipe, the network, and for a pretext recipe the
    # training, the phantom pool (phantoms.acdc's settings) and its preprocessing
    config_arg(
        encoder,
        lambda a: [
            f"encoders.{a.network}",
            f"networks.{a.network}",
            "train",
            "phantoms.seed",
            "phantoms.acdc",
            "prepare",
        ],
    )
    encoder.add_argument("--network", required=True, help="a network of the config")
    encoder.add_argument("--out", type=Path, required=True, help="safetensors file to write")
    encoder.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    encoder.set_defaults(handler=_run_encoder)


def _add_import_weights(verbs: Any) -> None:
    imported = verbs.add_parser(
        "import-weights",
        help="a torchvision ResNet-18 state dict (.pth) -> the network's encoder start file (safetensors)",
    )
    config_arg(imported, lambda a: [f"networks.{a.network}"])
    imported.add_argument(
        "--pth", type=Path, required=True, help="torch.save(resnet18.state_dict()) file"
    )
    imported.add_argument(
        "--network", default="pspnet", help="a network of the config (default: pspnet)"
    )
    imported.add_argument(
        "--out",
        type=Path,
        default=None,
        help="safetensors file to write (default: its start.encoder path)",
    )
    imported.set_defaults(handler=_run_import_weights)


def _add_reuse(verbs: Any) -> None:
    reuse = verbs.add_parser(
        "reuse", help="train a target from a source's tensors per a reuse plan"
    )
    # a reuse run trains like `train` (its plan and source are deps)
    config_arg(
        reuse,
        lambda a: ["train", f"networks.{network_of_name(a.run)}", "reuse.frozen_bn"],
    )
    reuse.add_argument(
        "--run", required=True, help="<model>-<freeze|finetune|selffer>-from-<source>"
    )
    flag(
        reuse,
        "--source-checkpoint",
        former="--source",
        type=Path,
        required=True,
        help="source model checkpoint",
    )
    reuse.add_argument("--plan", type=Path, required=True, help="reuse plan JSON")
    reuse.add_argument("--data", type=Path, required=True, help="the target's prepared dataset")
    reuse.add_argument("--out", type=Path, required=True, help="run folder to write")
    reuse.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    _resume_every_arg(reuse)
    reuse.add_argument(
        "--shared-encoder",
        type=Path,
        default=None,
        help="the network's shared encoder start (start.encoder: shared)",
    )
    reuse.set_defaults(handler=_run_reuse)
