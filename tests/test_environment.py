"""environment.yml, pyproject.toml and requirements.lock name the same packages at the same pins."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _split(requirement: str) -> tuple[str, str | None]:
    match = re.match(r"^([A-Za-z0-9_.\-]+)\s*(?:==\s*([^\s;]+))?", requirement)
    assert match, requirement
    return _norm(match.group(1)), match.group(2)


def _pyproject() -> dict[str, str | None]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_split(r) for r in requirements)


def _lock() -> dict[str, str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    pins = dict(_split(line) for line in lines if line and not line.startswith("#"))
    assert all(version for version in pins.values()), "every lock line must pin with =="
    return pins


def _environment() -> dict[str, str | None]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return dict(_split(r) for r in pip_section if not r.startswith("-e"))


def test_environment_yml_names_pyprojects_packages():
    assert set(_environment()) == set(_pyproject())


def test_lock_pins_every_direct_dependency_consistently():
    lock, pyproject, environment = _lock(), _pyproject(), _environment()
    missing = set(pyproject) - set(lock)
    assert not missing, f"lock lacks {missing}"
    for name, pin in pyproject.items():
        if pin:
            assert lock[name] == pin, f"{name}: pyproject {pin} vs lock {lock[name]}"
    for name, pin in environment.items():
        assert pin == lock[name], f"{name}: environment.yml {pin} vs lock {lock[name]}"


def test_torch_pair_is_the_one_on_local_disk():
    lock = _lock()
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"


def _uv_sources():
    import importlib.util

    spec = importlib.util.spec_from_file_location("uv_sources", ROOT / "tools" / "uv_sources.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_uv_takes_packages_from_where_pip_would():
    listing = "\n".join(
        [
            "global.find-links='/opt/wheels'",
            ":env:.find-links='/opt/wheels /srv/more wheels'",
            "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'",
            "global.constraint='/etc/xdg/pip/constraints.txt'",
            "user.index-url='https://mirror.example/simple'",
            "global.no-index='false'",
            "not a config line",
        ]
    )
    uv_sources = _uv_sources()
    assert uv_sources.uv_options(listing) == [
        "--index-strategy", "unsafe-best-match",
        "--find-links", "/opt/wheels",
        "--find-links", "/srv/more",
        "--find-links", "wheels",
        "--extra-index-url", "file:///opt/pypi/simple",
        "--extra-index-url", "file:///opt/pypi-more/simple",
        "--index-url", "https://mirror.example/simple",
    ]  # fmt: skip
    overridden = (
        "global.index-url='https://a.example/simple'\n:env:.index-url='https://b.example/simple'"
    )
    assert uv_sources.uv_options(overridden)[-2:] == ["--index-url", "https://b.example/simple"]


def test_uv_without_pip_configuration_uses_its_defaults_with_pips_index_strategy():
    options = _uv_sources().uv_options("")
    assert options == ["--index-strategy", "unsafe-best-match"]
    assert _uv_sources().uv_options("global.no-index='true'")[-1] == "--no-index"
