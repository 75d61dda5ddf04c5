"""`prrmse lineage PATH`: everything a product came from, down to the raw files.

Two sources of truth, used together:

- dvc.lock: the stage that wrote the file (or the directory containing it), its
  command, the config values it used (params) and the md5 of every dependency
  as the stage consumed it. Each dependency that another stage wrote becomes a
  child; the rest (raw downloads, the code `src/prrmse`) are leaves.
- the provenance stamp the product carries itself (CSV first line, PNG text
  chunk, PDF Subject, safetensors metadata, JSON "provenance" key, meta.json of
  a processed dataset): code version (commit, dirty), packages, seed, device.
  Without dvc.lock (or for a file no stage wrote) the tree is built from the
  stamps alone: their recorded inputs and sha256 hashes (origin "stamp").

Package resources (the paper's transcribed tables) are recorded in stamps as
`prrmse/resources/<file>` (`prrmse.results.paper.recorded_name`) with their sha256: they are
looked up in the installed package (importlib.resources), never in the working
directory, and checked against that hash (origin "package").

Every node's file is re-hashed: `status` is "ok" when the file on disk still
has the hash that was recorded, "modified" when not, "missing" when it is gone,
"unrecorded" when nothing recorded a hash for it (a Snakemake run not yet recorded
in dvc.lock: `prrmse dvc-record`). `trusted` is true only when the node and
everything below it are "ok". The verdict (`verdict`) tells the three apart: NOT
TRUSTED for a modified or missing file, UNVERIFIED when hashes were only never
recorded; `prrmse lineage` exits 1 unless the tree is trusted.
"""

from prrmse.repro.lineage.hashing import dir_manifest, md5_dir, md5_file, package_resource
from prrmse.repro.lineage.render import render_tree, run_lineage, verdict
from prrmse.repro.lineage.stamps import checkpoint_record, read_provenance, stamp_summary
from prrmse.repro.lineage.tree import lineage, problems

__all__ = [
    "checkpoint_record",
    "dir_manifest",
    "lineage",
    "md5_dir",
    "md5_file",
    "package_resource",
    "problems",
    "read_provenance",
    "render_tree",
    "run_lineage",
    "stamp_summary",
    "verdict",
]
