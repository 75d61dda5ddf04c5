"""The code a workflow job runs, fingerprinted for its DVC stage.

A job runs one verb; the verb's wrapper (a function of `prrmse.cli`) imports the library
modules it calls, inside its body. From there the package's static import graph (imports
inside functions included, with the packages a module sits in) gives every module the job
can execute. `prrmse code-manifest` writes, per verb, the sha256 of each of those files
(`results/code/<verb>.json`, one DVC stage depending on all of `src/prrmse`), and each job's
stage depends on its verb's manifest: an edit to a figure module changes the manifests of
the verbs that draw figures only, so only their stages rerun, and DVC checks the package
once per `dvc repro` instead of once per stage.

Read from the source tree without importing it (no cycle with `prrmse.cli`, and the same
answer whether or not the package is importable): verbs are found as
`x = verbs.add_parser("verb", ...)` followed by `x.set_defaults(handler=function)`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file, write_json_atomic

PACKAGE = "prrmse"
CLI = f"{PACKAGE}.cli"
# a module whose source reads packaged files makes the stage depend on them too
RESOURCE_READ = 'resources.files("prrmse")'
RESOURCES = "resources"
MANIFEST_DIR = "results/code"


@dataclass
class PackageSource:
    """The package's modules, their imports, and where each verb's wrapper lives."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    imports: dict[str, set[str]] = field(default_factory=dict)
    functions: dict[tuple[str, str], ast.FunctionDef] = field(default_factory=dict)
    module_imports: dict[str, set[str]] = field(default_factory=dict)
    handlers: dict[str, tuple[str, str]] = field(default_factory=dict)
    reads_resources: set[str] = field(default_factory=set)


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(nodes: Iterable[ast.AST], known: dict[str, Path]) -> set[str]:
    """Package modules named by the import statements among `nodes`; `from a import b` names
    `a.b` when that is a module, else `a`."""
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] != PACKAGE:
                continue
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names} & set(known)
    return found & set(known)


def _handlers(tree: ast.Module) -> dict[str, str]:
    """verb -> handler function name, from `x = verbs.add_parser("verb")` and the
    `x.set_defaults(handler=name)` that follows it (in source order: a name may be reused)."""
    events: list[tuple[int, int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            call = node.value
            if (
                isinstance(call.func, ast.Attribute)
                and call.func.attr == "add_parser"
                and call.args
                and isinstance(call.args[0], ast.Constant)
                and isinstance(node.targets[0], ast.Name)
            ):
                events.append((node.lineno, 0, node.targets[0].id, str(call.args[0].value)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "set_defaults"
            and isinstance(node.func.value, ast.Name)
        ):
            for keyword in node.keywords:
                if keyword.arg == "handler" and isinstance(keyword.value, ast.Name):
                    events.append((node.lineno, 1, node.func.value.id, keyword.value.id))
    parser_verb: dict[str, str] = {}
    found: dict[str, str] = {}
    for _, kind, name, value in sorted(events):
        if kind == 0:
            parser_verb[name] = value
        elif name in parser_verb:
            found[parser_verb[name]] = value
    return found


def read_package(root: Path) -> PackageSource:
    """Parse every module under `root` (the package folder, e.g. `src/prrmse`)."""
    source = PackageSource(root=root)
    paths = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    source.files = {_module_name(root, p): p for p in paths}
    for module, path in source.files.items():
        text = path.read_text(encoding="utf-8")
        try:
            tree = ast.parse(text, filename=str(path))
        except SyntaxError as err:
            raise PrrmseError(path, f"does not parse: {err.msg} (line {err.lineno})") from None
        source.imports[module] = _imported(ast.walk(tree), source.files) - {module}
        source.module_imports[module] = _imported(tree.body, source.files) - {module}
        if RESOURCE_READ in text:
            source.reads_resources.add(module)
        if module.startswith(CLI):
            for node in tree.body:
                if isinstance(node, ast.FunctionDef):
                    source.functions[(module, node.name)] = node
            source.handlers |= {verb: (module, fn) for verb, fn in _handlers(tree).items()}
    return source


def _wrapper(source: PackageSource, module: str, name: str) -> tuple[set[str], set[str]]:
    """(CLI modules, library modules) a wrapper function runs: its own imports and those of
    the CLI functions it calls, with its module's top-level imports."""
    cli_modules: set[str] = set()
    library: set[str] = set()
    pending = [(module, name)]
    seen: set[tuple[str, str]] = set()
    while pending:
        key = pending.pop()
        if key in seen or key not in source.functions:
            continue
        seen.add(key)
        owner, function = key
        cli_modules.add(owner)
        body = list(ast.walk(source.functions[key]))
        for imported in _imported(body, source.files) | source.module_imports[owner]:
            (cli_modules if imported.startswith(CLI) else library).add(imported)
        called = {
            n.func.id for n in body if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        for other in sorted(cli_modules | {owner}):
            pending += [(other, fn) for fn in called if (other, fn) in source.functions]
    # a CLI module imported only for its helpers counts by the helpers it lent (above)
    return {m for m, _ in seen}, library


def closure(source: PackageSource, modules: Iterable[str]) -> set[str]:
    """Every package module reachable from `modules` through imports, with the packages
    each sits in (importing a module runs its packages' `__init__` first)."""
    reached: set[str] = set()
    pending = list(modules)
    while pending:
        module = pending.pop()
        if module in reached or module not in source.files:
            continue
        reached.add(module)
        parts = module.split(".")
        pending += [".".join(parts[:n]) for n in range(1, len(parts))]
        pending += sorted(source.imports.get(module, set()) - reached)
    return reached


def verb_files(source: PackageSource, verb: str) -> list[Path]:
    """The files a job of `verb` runs or reads from the package: its wrapper's CLI modules,
    every module its imports reach, and the packaged resources where one of those reads them."""
    if verb not in source.handlers:
        raise PrrmseError(source.root / "cli", f"no wrapper registers the verb '{verb}'")
    cli_modules, library = _wrapper(source, *source.handlers[verb])
    # a CLI module's imports are those of all its wrappers: only the ones this verb's
    # functions make count (`library`), with the packages the CLI modules sit in
    reached = closure(source, library | {CLI}) | cli_modules
    files = {source.files[m] for m in reached}
    if reached & source.reads_resources:
        resources = source.root / RESOURCES
        files |= {p for p in resources.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    return sorted(files)


def code_manifest(source: PackageSource, verb: str, workdir: Path) -> dict[str, Any]:
    """The fingerprint of a verb's code: each file's sha256, keyed by its path relative to
    `workdir`. Nothing else (no time, no commit), so unchanged code gives the same bytes."""
    files = verb_files(source, verb)
    return {
        "verb": verb,
        "files": {p.relative_to(workdir).as_posix(): sha256_file(p) for p in files},
    }


def manifest_path(verb: str) -> str:
    return f"{MANIFEST_DIR}/{verb}.json"


def write_code_manifests(package: Path, verbs: Iterable[str], workdir: Path) -> list[Path]:
    """Write `results/code/<verb>.json` under `workdir` for each verb; return the paths."""
    source = read_package(package)
    written = []
    for verb in sorted(set(verbs)):
        path = Path(workdir) / manifest_path(verb)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, code_manifest(source, verb, Path(workdir)))
        written.append(path)
    return written
