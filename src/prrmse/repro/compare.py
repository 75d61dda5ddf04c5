"""Do two runs hold the same products, whichever commit of prrmse made them?

Every product carries its provenance stamp, whose `code.commit` names the commit that made
it, and a product made from others names their sha256 (a figure the CSVs it drew, a table
the files it read). So two runs of different commits differ in bytes even when the science
is identical. The comparison takes that, and only that, out of both:

- every `"commit": "<40 hex>"` is read as forty zeros (also where the stamp is a JSON string
  inside JSON, as in a checkpoint's safetensors header);
- every 64-hex token equal to the sha256 of another product of the same run is read as
  that product's normalised hash (recursively: a product never holds its own hash);
- a PNG is read chunk by chunk without the chunks' CRCs (a text chunk's CRC covers the
  stamp and would carry the commit along).

Replacements keep lengths, so a PDF's byte offsets stay valid. Nothing else is excluded:
`dirty`, package versions, device, seeds, inputs that are not products and every byte of
data count. Logs (timings) and the code manifests (paths of the code, which a refactoring
moves) are not products. `prrmse compare-runs` prints what differs and exits 1 if anything
does.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prrmse.core.errors import PrrmseError
from prrmse.core.io import sha256_file
from prrmse.repro.codedeps import MANIFEST_DIR

PRODUCT_FOLDERS = ("data", "results")
NOT_PRODUCTS = (MANIFEST_DIR,)
SKIPPED_NAMES = (".snakemake_timestamp",)
# the stamp as JSON, or as a JSON string inside JSON (safetensors metadata: quotes escaped)
_COMMIT = re.compile(rb'(\\*"commit\\*": ?\\*")[0-9a-f]{40}(\\*")')
_SHA256 = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def product_files(root: Path, folders: Iterable[str] = PRODUCT_FOLDERS) -> dict[str, Path]:
    """Every product file of a run under `root`, keyed by its path relative to `root`."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted((Path(root) / folder).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or path.name in SKIPPED_NAMES or "__pycache__" in path.parts:
                continue
            if any(rel == p or rel.startswith(f"{p}/") for p in NOT_PRODUCTS):
                continue
            found[rel] = path
    return found


def _png_without_crcs(data: bytes, path: Path) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        return data
    out, at = [data[:8]], 8
    while at < len(data):
        if at + 8 > len(data):
            raise PrrmseError(path, f"truncated PNG chunk at byte {at}")
        (length,) = struct.unpack(">I", data[at : at + 4])
        out.append(data[at : at + 8 + length])
        at += 12 + length
    return b"".join(out)


class NormalisedRun:
    """The products of one run, each with its hash after normalisation."""

    def __init__(self, root: Path, folders: Iterable[str] = PRODUCT_FOLDERS) -> None:
        self.root = Path(root)
        self.files = product_files(self.root, folders)
        if not self.files:
            raise PrrmseError(self.root, f"no products under {', '.join(folders)}")
        self._raw = {rel: sha256_file(path) for rel, path in self.files.items()}
        self._by_raw = {digest: rel for rel, digest in self._raw.items()}
        self._normal: dict[str, str] = {}

    def normalised(self, rel: str, _chain: tuple[str, ...] = ()) -> str:
        if rel in self._normal:
            return self._normal[rel]
        if rel in _chain:
            raise PrrmseError(self.files[rel], "holds its own hash through other products")
        data = _png_without_crcs(self.files[rel].read_bytes(), self.files[rel])
        data = _COMMIT.sub(lambda m: m.group(1) + b"0" * 40 + m.group(2), data)

        def product_hash(match: re.Match[bytes]) -> bytes:
            other = self._by_raw.get(match.group(0).decode())
            if other is None or other == rel:
                return match.group(0)
            return self.normalised(other, (*_chain, rel)).encode()

        data = _SHA256.sub(product_hash, data)
        self._normal[rel] = hashlib.sha256(data).hexdigest()
        return self._normal[rel]

    def hashes(self) -> dict[str, str]:
        return {rel: self.normalised(rel) for rel in self.files}


@dataclass(frozen=True)
class Comparison:
    same: list[str]
    differ: list[str]
    only_first: list[str]
    only_second: list[str]

    @property
    def identical(self) -> bool:
        return not (self.differ or self.only_first or self.only_second)


def compare_runs(first: Path, second: Path, folders: Iterable[str] = PRODUCT_FOLDERS) -> Comparison:
    """Compare the products of two runs after normalising away the commit that made them."""
    folders = tuple(folders)
    a, b = NormalisedRun(first, folders).hashes(), NormalisedRun(second, folders).hashes()
    both = sorted(set(a) & set(b))
    return Comparison(
        same=[rel for rel in both if a[rel] == b[rel]],
        differ=[rel for rel in both if a[rel] != b[rel]],
        only_first=sorted(set(a) - set(b)),
        only_second=sorted(set(b) - set(a)),
    )
