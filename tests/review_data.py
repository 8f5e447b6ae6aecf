"""A small reviewed-to-be batch made once per test session with the local backend.

Four jobs whose checks' verdicts are known: ``tee-middle`` and ``tee-left-chest`` pass,
``tee-badbox`` fails (its subject box is far from the chest), ``tee-nobody`` is not measured
(its target has no person). ``tee-nobody`` has two candidates; the local preview draws the
same picture for every seed, so candidate 2's file is mirrored here to tell them apart,
and its sidecar says ``chosen_by: "none"`` (flagged) as best-of-N does when the checks
cannot rank candidates. Tests copy the folder with :func:`copy_batch`.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

from PIL import Image, ImageOps

from fluxcompose.backends import LocalBackend
from fluxcompose.batch import run_batch

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ORDER = ("tee-middle", "tee-nobody", "tee-left-chest", "tee-badbox")  # by line, then age
CHECKS = {
    "tee-middle": "passed",
    "tee-left-chest": "passed",
    "tee-badbox": "failed",
    "tee-nobody": "not_measured",
}

ROWS = {
    "tee-middle": "tee-middle,pattern.png,model.jpg,42,middle,",
    "tee-left-chest": "tee-left-chest,pattern.png,model.jpg,7,upper left of the chest,",
    "tee-badbox": 'tee-badbox,pattern.png,model.jpg,5,middle,"0.05,0.05,0.25,0.2"',
    "tee-nobody": "tee-nobody,pattern.png,style.jpg,9,middle,",
    "tee-live": "tee-live,pattern.png,model.jpg,11,middle,",
}
HEADER = "id,left,right,seed,var.placement,subject_box\n"


def pairs_file(folder: Path, ids: tuple[str, ...], name: str = "pairs.csv") -> Path:
    """A PAIRS file in ``folder`` (beside copies of the samples) with the rows ``ids``."""
    for img in ("pattern.png", "model.jpg", "style.jpg"):
        if not (folder / img).exists():
            shutil.copy(SAMPLES / img, folder / img)
    lines = [ROWS[i] for i in ids]
    path = folder / name
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_rows(outdir: Path, ids: tuple[str, ...], *, candidates: int = 1) -> None:
    """Run the rows ``ids`` into ``outdir`` on the local backend."""
    src = outdir.parent / f"{outdir.name}-pairs-{'-'.join(ids)}"
    src.mkdir(exist_ok=True)
    summary = run_batch(
        pairs_file(src, ids),
        "pattern-transfer",
        outdir,
        backend=LocalBackend(),
        candidates=candidates,
        report=False,
    )
    assert summary["failed"] == 0, summary


@functools.lru_cache(maxsize=1)
def sample_batch() -> Path:
    """The batch folder (made once per process; never changed: copy it)."""
    root = Path(tempfile.mkdtemp(prefix="fluxcompose-review-"))
    atexit.register(shutil.rmtree, root, True)
    out = root / "batch"
    run_rows(out, ("tee-middle", "tee-left-chest", "tee-badbox"))
    run_rows(out, ("tee-nobody",), candidates=2)
    c2 = out / "candidates" / "tee-nobody" / "tee-nobody.c2.png"
    with Image.open(c2) as im:
        ImageOps.mirror(im.convert("RGB")).save(c2)
    side_path = out / "tee-nobody.json"
    side = json.loads(side_path.read_text())
    side.setdefault("chosen_by", "none")
    side_path.write_text(json.dumps(side, indent=2))
    return out


def copy_batch(dest: Path) -> Path:
    """A fresh copy of :func:`sample_batch` at ``dest`` (absolute paths in the journal are
    rewritten to the copy)."""
    src = sample_batch()
    shutil.copytree(src, dest)
    db = sqlite3.connect(dest / "journal.sqlite")
    for col in ("output_path", "sidecar_path"):
        db.execute(f"UPDATE jobs SET {col} = REPLACE({col}, ?, ?)", (str(src), str(dest)))
    db.execute(
        "UPDATE candidates SET output_path = REPLACE(output_path, ?, ?),"
        " sidecar_path = REPLACE(sidecar_path, ?, ?)",
        (str(src), str(dest), str(src), str(dest)),
    )
    db.commit()
    db.close()
    return dest
