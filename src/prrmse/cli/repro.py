"""`prrmse dvc-sync`, `prrmse dvc-record` and `prrmse lineage`: the workflow's DVC record and
a product's lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from prrmse.core.errors import PrrmseError
from prrmse.repro import lineage
from prrmse.repro.codedeps import write_code_manifests
from prrmse.repro.compare import PRODUCT_FOLDERS, compare_runs
from prrmse.repro.dvcgen import (
    check_dvc_yaml,
    write_dvc_yaml,
)
from prrmse.repro.record import record_snakemake_run, sync_snakemake_after_dvc


def register(subparsers: Any) -> None:
    """`prrmse dvc-sync` (write dvc.yaml), `--check` (fail on drift), `--touch-snakemake`;
    `prrmse dvc-record` (record a finished Snakemake run in dvc.lock)."""
    parser = subparsers.add_parser("dvc-sync", help="generate dvc.yaml from the Snakefile's jobs")
    parser.add_argument(
        "--config", type=Path, default=Path("config/config.yaml"), help="workflow config (YAML)"
    )
    parser.add_argument("--snakefile", type=Path, default=Path("Snakefile"))
    parser.add_argument("--workdir", type=Path, default=Path("."))
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--check", action="store_true", help="only compare; exit 1 if dvc.yaml is out of date"
    )
    action.add_argument(
        "--touch-snakemake",
        action="store_true",
        help="after dvc pull/checkout: if dvc status is clean, snakemake --touch so both agree",
    )
    parser.set_defaults(handler=run_dvc_sync)

    record = subparsers.add_parser(
        "dvc-record",
        help="record a finished Snakemake run in dvc.lock (dvc status clean, dvc repro a no-op)",
    )
    record.add_argument(
        "--config", type=Path, default=Path("config/config.yaml"), help="workflow config (YAML)"
    )
    record.add_argument("--snakefile", type=Path, default=Path("Snakefile"))
    record.add_argument("--workdir", type=Path, default=Path("."))
    record.set_defaults(handler=run_dvc_record)
    _register_lineage(subparsers)
    manifest = subparsers.add_parser(
        "code-manifest",
        help="write results/code/<verb>.json: sha256 of every package file each verb runs",
    )
    manifest.add_argument("verbs", nargs="+", help="the verbs whose manifests to write")
    manifest.add_argument(
        "--package", type=Path, default=Path("src/prrmse"), help="the package's source folder"
    )
    manifest.add_argument(
        "--workdir", type=Path, default=Path("."), help="paths in the manifest are relative to it"
    )
    manifest.set_defaults(handler=run_code_manifest)
    compare = subparsers.add_parser(
        "compare-runs",
        help="do two runs hold the same products, whichever commit made them? (exit 1 if not)",
    )
    compare.add_argument("first", type=Path, help="root of the first run (holds data/, results/)")
    compare.add_argument("second", type=Path, help="root of the second run")
    compare.add_argument(
        "--folders",
        nargs="+",
        default=list(PRODUCT_FOLDERS),
        help="product folders under each root (default: %(default)s)",
    )
    compare.set_defaults(handler=run_compare_runs)


def run_dvc_sync(args: Any) -> None:
    if args.touch_snakemake:
        sync_snakemake_after_dvc(args.workdir, args.config)
        print("dvc status clean; snakemake outputs touched: nothing to run")
        return
    if args.check:
        diff = check_dvc_yaml(args.snakefile, args.config, args.workdir, verb_keys=args.verb_keys)
        if diff:
            print("\n".join(diff[:60]))
            raise PrrmseError(Path(args.workdir) / "dvc.yaml", "out of date: run `prrmse dvc-sync`")
        print("dvc.yaml is in sync with the Snakefile")
        return
    path = write_dvc_yaml(args.snakefile, args.config, args.workdir, verb_keys=args.verb_keys)
    stages = len(yaml.safe_load(path.read_text())["stages"])
    print(f"dvc-sync: {stages} stages -> {path}")


def run_dvc_record(args: Any) -> None:
    result = record_snakemake_run(
        args.workdir, args.config, args.snakefile, verb_keys=args.verb_keys
    )
    line = (
        f"dvc-record: {len(result.stages)} stages recorded in dvc.lock, "
        f"{len(result.committed)} of them now ({result.seconds:.1f} s)"
    )
    if result.unlinked:
        line += f"; {len(result.unlinked)} files with the same bytes kept as copies"
    if result.pending:
        shown = ", ".join(result.pending[:5]) + (" ..." if len(result.pending) > 5 else "")
        line += f"; {len(result.pending)} not recorded, Snakemake would run them: {shown}"
    else:
        line += "; dvc status clean"
    print(line)


def _register_lineage(subparsers: Any) -> None:
    """`prrmse lineage PATH [--json] [--lock dvc.lock] [--root .]`."""
    parser = subparsers.add_parser(
        "lineage", help="trace a product to the raw files, config values and code"
    )
    parser.add_argument(
        "path", type=Path, help="a figure, table, CSV, plan, checkpoint or dataset folder"
    )
    parser.add_argument("--json", action="store_true", help="print the tree as JSON")
    parser.add_argument(
        "--lock", type=Path, default=Path("dvc.lock"), help="dvc.lock to read (relative to --root)"
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    parser.set_defaults(
        handler=lambda args: lineage.run_lineage(args.path, args.json, args.lock, args.root)
    )


def run_code_manifest(args: Any) -> None:
    written = write_code_manifests(args.package, args.verbs, args.workdir)
    print(f"code-manifest: {len(written)} verbs -> {written[0].parent if written else '-'}")


def run_compare_runs(args: Any) -> None:
    result = compare_runs(args.first, args.second, args.folders)
    for label, paths in (
        ("differ", result.differ),
        (f"only in {args.first}", result.only_first),
        (f"only in {args.second}", result.only_second),
    ):
        for path in paths:
            print(f"{label}: {path}")
    print(
        f"compare-runs: {len(result.same)} products identical once the commit is normalised, "
        f"{len(result.differ)} differ, {len(result.only_first)} + {len(result.only_second)} "
        "in one run only"
    )
    if not result.identical:
        raise PrrmseError(args.second, "products differ from the first run's")
