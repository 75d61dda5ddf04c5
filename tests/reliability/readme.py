"""Write tests/reliability/README.md: the suite's cases with the messages a real run gave."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

INTRO = """\
# Bad-input suite

`make test` runs it (`pytest tests/reliability`). Every case damages a copy of tiny, valid
inputs (phantoms written by `prrmse.data.phantoms`, a prepared dataset, a trained UNet, a sweep,
an RMSE table and a plan, made once per session), runs the real command line
(`prrmse.cli.main.main(argv)`; the file-size case runs `python -m prrmse.cli.main` as a process of its
own) and asserts:

- the exit code is non-zero (1 for bad input, 2 for bad command-line arguments);
- stderr is exactly one line, `prrmse <verb>: error: <file or key>: <problem>`, and holds no
  traceback; the line names the offending file (or config key, or argument) and the problem;
- none of the command's declared outputs exists afterwards, and no temporary file
  (`.<name>.tmp-<pid>`) is left beside them.

The full disk is a real tmpfs filled to its last byte, the read-only folder a read-only tmpfs
(both need root with mount rights; without them the full-disk cases are skipped and the
read-only folder is made with `chmod 555`, which binds only non-root users). The "file too
large" case sets `RLIMIT_FSIZE` to 1 KiB in the child process (`SIGXFSZ` ignored, so writes
fail with `EFBIG`) and runs everywhere.

Bugs this suite found, fixed in the library it tests:

- a bit flip inside a `.nii.gz` passed unnoticed (nibabel stops reading before the gzip
  CRC trailer; the voxels were silently different): `read_nifti` now checks the stream;
- NaN in a prepared `images.npy` surfaced only as a NaN loss naming the run folder, or not
  at all (the sweep): `load_processed` refuses it, naming the file and the image row;
- a float16 tensor was cast silently by `load_state_dict`, a NaN weight loaded: refused;
- a checkpoint record that is not a JSON object gave an AttributeError traceback; an
  unknown recorded architecture or option named the architecture, not the file;
- a full disk while writing a checkpoint gave a `SafetensorError` traceback (safetensors'
  own error type escaped `atomic_path`);
- argparse errors were the usage text plus the error: now the error line alone (exit 2);
- an `OSError` no check foresaw (a missing figure input) gave a traceback: `main()` now
  prints it as one line naming the file;
- a symlink-loop data root said "data folder not found"; an output folder that is a file
  said "File exists";
- Table 1's `.csv` was renamed into place before its `.md` and `.tex` were written.

Regenerate this file from a real run with

    PRRMSE_RELIABILITY_README=tests/reliability/README.md pytest tests/reliability

`<case>` stands for the case's temporary folder, `<kit>` for the session's folder of good inputs.

"""


class CaseRow(Protocol):
    name: str
    entry: str
    bad_input: str


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def write_readme(
    path: Path, cases: Sequence[CaseRow], messages: Mapping[str, tuple[str, int]]
) -> None:
    rows = ["| # | entry point | bad input | message (stderr) | exit |", "|---|---|---|---|---|"]
    for number, case in enumerate(cases, start=1):
        message, code = messages.get(case.name, ("(not run here: skipped)", ""))  # type: ignore[arg-type]
        shown = f"`{_cell(message)}`" if code != "" else message
        rows.append(f"| {number} | {case.entry} | {_cell(case.bad_input)} | {shown} | {code} |")
    path.write_text(INTRO + "\n".join(rows) + "\n")
