"""Print the `uv pip install` options that take packages from where pip would take them.

uv reads no pip configuration, so a site's local wheel folders and index mirrors (pip's
config files and PIP_* variables, as `pip config list` shows them) are passed on here.
pip picks the best version across all its indexes; `--index-strategy unsafe-best-match` is
uv's name for that behaviour (its default stops at the first index that has the package).

Usage: uv pip install $(python tools/uv_sources.py) -r requirements.lock
"""

from __future__ import annotations

import re
import subprocess
import sys

_LINE = re.compile(r"^(?P<scope>[^.=]*)\.(?P<key>[a-z-]+)='(?P<value>.*)'$")
_MULTI_VALUED = {"find-links": "--find-links", "extra-index-url": "--extra-index-url"}


def uv_options(pip_config_list: str) -> list[str]:
    """Options for `uv pip install` from the text of `pip config list`."""
    options: list[str] = ["--index-strategy", "unsafe-best-match"]
    seen: set[tuple[str, str]] = set()
    index_url: str | None = None
    no_index = False
    for line in pip_config_list.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        key, value = match["key"], match["value"]
        if key in _MULTI_VALUED:
            for item in value.split():
                if (key, item) not in seen:
                    seen.add((key, item))
                    options += [_MULTI_VALUED[key], item]
        elif key == "index-url":
            index_url = value  # listed from global to environment: the last one is pip's
        elif key == "no-index":
            no_index = value.lower() in {"1", "true", "yes", "on"}
    if index_url is not None:
        options += ["--index-url", index_url]
    return options + (["--no-index"] if no_index else [])


def main() -> int:
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    print(" ".join(uv_options(listing)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
