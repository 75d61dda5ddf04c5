"""Saving a figure with its provenance: <out_base>.png and <out_base>.pdf written under temp
names, then renamed, both carrying a provenance record (the inputs' sha256 and their own
provenance lines): PNG as a "prrmse" text chunk, PDF as the Subject (a JSON string);
neither holds a date, so the same inputs give the same bytes. And reading it back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from prrmse.core import provenance
from prrmse.core.io import atomic_path, sha256_file
from prrmse.figures.style import house_style


def figure_paths(out_base: Path) -> tuple[Path, Path]:
    """<out_base>.png and <out_base>.pdf (a .png/.pdf suffix on out_base is dropped)."""
    base = Path(out_base)
    if base.suffix in (".png", ".pdf"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".png"), base.with_name(base.name + ".pdf")


def figure_provenance(inputs: Sequence[Path], what: str) -> dict[str, Any]:
    return provenance.stamp(
        figure=what,
        inputs={str(path): sha256_file(path) for path in inputs},
        input_provenance={str(path): provenance.read_csv_provenance(path) for path in inputs},
    )


def save_figure(figure: Figure, out_base: Path, record: dict[str, Any]) -> tuple[Path, Path]:
    """PNG and PDF with the provenance embedded, both renamed into place only once both exist."""
    png, pdf = figure_paths(out_base)
    text = json.dumps(record, sort_keys=True, default=str)
    title = figure.get_suptitle() or png.stem
    with house_style(), atomic_path(png) as png_temp, atomic_path(pdf) as pdf_temp:
        # The temp names end in .tmp-<pid>: the format must be named, not inferred.
        figure.savefig(png_temp, format="png", metadata={"Title": title, "prrmse": text})
        figure.savefig(
            pdf_temp,
            format="pdf",
            metadata={
                "Title": title,
                "Subject": text,
                "Keywords": "prrmse provenance (JSON in Subject)",
                "Creator": f"prrmse {record.get('code', {}).get('version', '')}".strip(),
                "CreationDate": None,
            },
        )
    return png, pdf


def read_figure_provenance(path: Path) -> dict[str, Any] | None:
    """The provenance a figure file carries (PNG text chunk or PDF Subject), None if none."""
    path = Path(path)
    text = provenance.png_text(path) if path.suffix == ".png" else provenance.pdf_subject(path)
    return json.loads(text) if text else None
