"""What review reads and writes in an OUTDIR that ``run``, ``batch`` or ``ab`` wrote.

- ``batch``: ``OUTDIR/journal.sqlite``; its jobs are the journal's done jobs, and verdicts go
  into the same journal's ``reviews`` table.
- ``ab``: ``OUTDIR/ab.json`` and one batch per arm in ``OUTDIR/<arm>/``; a job's key is
  ``<arm>/<job_id>`` and its verdicts go into that arm's journal.
- ``run``: ``<job>.json`` sidecars and no journal; verdicts go into ``OUTDIR/reviews.sqlite``.

Every path handed out is relative to OUTDIR (POSIX); :func:`contained` is the one check that
a path asked for stays inside OUTDIR once symlinks are resolved.

Over 500 lines because it reads all three kinds of OUTDIR (run, batch, ab) into one job
list, and writes verdicts and candidate choices back through the journal; the page, the
CLI and the retry planner all go through it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ab import AB_JSON
from ..errors import InputError
from ..images import write_bytes_atomic
from ..journal import JOURNAL_NAME, Journal, ReviewRow
from ..scoring import KEY_METRICS, metric_at
from .model import Judged, Verdict, checks_verdict, export_row, parse_reasons

__all__ = [
    "REVIEWS_NAME",
    "JobEntry",
    "ReviewStore",
    "contained",
]

REVIEWS_NAME = "reviews.sqlite"


def contained(root: Path, rel: str) -> Path | None:
    """``root / rel`` resolved (symlinks followed) when it lies inside ``root``, else None.

    ``root`` must already be resolved. Absolute paths, ``..`` and symlinks leading out all
    give None.
    """
    if not rel or "\x00" in rel:
        return None
    candidate = Path(rel)
    if candidate.is_absolute() or candidate.drive:
        return None
    try:
        full = (root / candidate).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return full if full.is_relative_to(root) else None


@dataclass
class JobEntry:
    """One reviewable job (an output on disk). Paths are relative to OUTDIR (POSIX)."""

    key: str  # job_id, or "<arm>/<job_id>" in an A/B folder
    job_id: str
    arm: str | None
    line: int | None
    output: str | None
    thumb: str | None
    sidecar: str | None
    checks: dict[str, Any] = field(default_factory=dict)
    checks_verdict: str = "not_measured"
    flagged: bool = False
    finished_at: float | None = None
    updated: float | None = None  # changes when the output does (the page's cache key)
    candidates: int = 0

    def compact(self) -> dict[str, Any]:
        """The fields the grid needs."""
        return {
            "key": self.key,
            "job_id": self.job_id,
            "arm": self.arm,
            "line": self.line,
            "output": self.output,
            "thumb": self.thumb,
            "checks": self.checks_verdict,
            "flagged": self.flagged,
            "finished_at": self.finished_at,
            "updated": self.updated,
            "candidates": self.candidates,
        }


def _rel(root: Path, path: str | Path | None) -> str | None:
    if not path:
        return None
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.resolve().relative_to(root).as_posix()
    except (ValueError, OSError):
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _flagged(side: Mapping[str, Any] | None) -> bool:
    """Flagged for review: best-of-N could not rank the candidates (section 12)."""
    if not side:
        return False
    return side.get("chosen_by") == "none" or side.get("flagged") is True


class ReviewStore:
    """The jobs of one OUTDIR and their reviews. Thread-safe; reads are fresh on every call."""

    def __init__(self, outdir: str | Path, *, reviewer: str | None = None) -> None:
        root = Path(outdir)
        if not root.is_dir():
            raise InputError(f"{outdir}: no such folder")
        self.root = root.resolve()
        self.reviewer = reviewer
        self._lock = threading.RLock()
        self.arms: list[str] = []
        self._journals: dict[str | None, Journal] = {}
        self._pair_of: dict[tuple[str, str], int] = {}
        self._flags: dict[Path, tuple[int, bool]] = {}
        self._entries: dict[tuple[str | None, str], tuple[float, JobEntry]] = {}
        # An A/B folder: ab.json, or (while ab still runs) arm folders with journals.
        arm_dirs = sorted(
            p.parent.name for p in self.root.glob(f"*/{JOURNAL_NAME}") if p.parent.is_dir()
        )
        if (self.root / AB_JSON).is_file() or (
            arm_dirs and not (self.root / JOURNAL_NAME).is_file()
        ):
            self.kind = "ab"
            doc = _read_json(self.root / AB_JSON) or {}
            named = [str(a["name"]) for a in doc.get("arms") or [] if "name" in a]
            self.arms = named + [a for a in arm_dirs if a not in named]
            # Which pair each arm's job belongs to: the grid shows a pair's arms together.
            for i, pair in enumerate(doc.get("pairs") or []):
                for arm, cell in (pair.get("arms") or {}).items():
                    if isinstance(cell, dict) and cell.get("job_id"):
                        self._pair_of[(str(arm), str(cell["job_id"]))] = i
            for arm in self.arms:
                if (self.root / arm / JOURNAL_NAME).is_file():
                    self._journals[arm] = Journal(self.root / arm / JOURNAL_NAME, durable=True)
        elif (self.root / JOURNAL_NAME).is_file():
            self.kind = "batch"
            self._journals[None] = Journal(self.root / JOURNAL_NAME, durable=True)
        else:
            self.kind = "run"
            self._journals[None] = Journal(self.root / REVIEWS_NAME, durable=True)

    def close(self) -> None:
        for j in self._journals.values():
            j.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs -------------------------------------------------------------------

    def _base(self, arm: str | None) -> Path:
        return self.root if arm is None else self.root / arm

    def _flag_of(self, sidecar: Path) -> bool:
        """Whether a sidecar says the job is flagged, cached by its modification time."""
        try:
            mtime = sidecar.stat().st_mtime_ns
        except OSError:
            return False
        hit = self._flags.get(sidecar)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        flag = _flagged(_read_json(sidecar))
        self._flags[sidecar] = (mtime, flag)
        return flag

    def _entry_from_brief(self, arm: str | None, row: Mapping[str, Any]) -> JobEntry:
        """A journal's done job as a :class:`JobEntry`, cached by its ``updated_at``."""
        cache_key = (arm, str(row["job_id"]))
        hit = self._entries.get(cache_key)
        if hit is not None and hit[0] == row["updated_at"]:
            entry = hit[1]
        else:
            entry = self._make_entry(arm, row)
            self._entries[cache_key] = (row["updated_at"], entry)
        if entry.candidates and entry.sidecar:
            # Only best-of-N can leave a job flagged: read the sidecars of those alone.
            side = self.root / entry.sidecar
            entry.flagged = self._flag_of(side)
        return entry

    def _make_entry(self, arm: str | None, row: Mapping[str, Any]) -> JobEntry:
        prefix = "" if arm is None else f"{arm}/"
        thumbs = json.loads(row["thumbs"]) if row["thumbs"] else {}
        checks = json.loads(row["checks"]) if row["checks"] else None
        passed = row["checks_passed"]
        thumb = thumbs.get("output")
        return JobEntry(
            key=f"{prefix}{row['job_id']}",
            job_id=str(row["job_id"]),
            arm=arm,
            line=row["line"],
            output=self._in_base(arm, row["output_path"]),
            thumb=(prefix + str(thumb)) if thumb else None,
            sidecar=self._in_base(arm, row["sidecar_path"]),
            checks=dict(checks or {}),
            checks_verdict=checks_verdict(checks, None if passed is None else bool(passed)),
            finished_at=row["finished_at"],
            updated=row["updated_at"],
            candidates=len(thumbs.get("candidates") or []),
        )

    def _in_base(self, arm: str | None, path: str | None) -> str | None:
        """A path the journal recorded, relative to OUTDIR. Outputs and sidecars sit right
        in the job's folder, so the file name is enough when the recorded folder is not
        OUTDIR as resolved now (the batch ran from another folder, or OUTDIR moved)."""
        if not path:
            return None
        prefix = "" if arm is None else f"{arm}/"
        base = str(self._base(arm)) + os.sep
        if path.startswith(base):
            return prefix + path[len(base) :].replace(os.sep, "/")
        return prefix + Path(path).name

    def _run_entries(self) -> Iterator[JobEntry]:
        for path in sorted(self.root.glob("*.json")):
            side = _read_json(path)
            if not side or "job_id" not in side or not isinstance(side.get("output"), dict):
                continue
            out = side["output"].get("path")
            if not out or not (self.root / str(out)).is_file():
                continue
            checks = side.get("checks")
            if checks is None and isinstance(side.get("compare"), dict):
                checks = side["compare"].get("checks")
            passed = side.get("passed")
            yield JobEntry(
                key=str(side["job_id"]),
                job_id=str(side["job_id"]),
                arm=None,
                line=None,
                output=str(out),
                thumb=None,
                sidecar=path.name,
                checks=dict(checks or {}),
                checks_verdict=checks_verdict(
                    checks if isinstance(checks, dict) else None,
                    passed if isinstance(passed, bool) else None,
                ),
                flagged=_flagged(side),
                finished_at=path.stat().st_mtime,
                updated=path.stat().st_mtime,
                candidates=len(side.get("candidates") or []),
            )

    def jobs(self) -> list[JobEntry]:
        """Every job with an output, in order: by arm, then line (A/B: by line, then arm)."""
        if self.kind == "run":
            return list(self._run_entries())
        out: list[JobEntry] = []
        for arm, journal in self._journals.items():
            out.extend(self._entry_from_brief(arm, row) for row in journal.done_jobs_brief())
        if self.kind == "ab":
            order = {a: i for i, a in enumerate(self.arms)}

            def pair_key(e: JobEntry) -> tuple[int, int, int]:
                pair = self._pair_of.get((e.arm or "", e.job_id))
                return (pair if pair is not None else 10**9, e.line or 0, order.get(e.arm or "", 0))

            out.sort(key=pair_key)
        return out

    def version(self) -> str:
        """Changes whenever a job finishes or a review is recorded (for live polling)."""
        parts: list[str] = []
        if self.kind == "run":
            for entry in os.scandir(self.root):
                if entry.name.endswith(".json"):
                    parts.append(f"{entry.name}:{entry.stat().st_mtime_ns}")
        for journal in self._journals.values():
            parts.append(journal.change_marker())
        return str(hash(tuple(sorted(parts))))

    def find(self, key: str) -> JobEntry:
        """The job called ``key`` (in an A/B folder a bare job id works when only one arm has
        it); InputError when there is none."""
        matches = [e for e in self.jobs() if e.key == key]
        if not matches and self.kind == "ab":
            matches = [e for e in self.jobs() if e.job_id == key]
            if len(matches) > 1:
                raise InputError(f"job {key!r} is in several arms; say ARM/{key}")
        if not matches:
            raise InputError(f"unknown job {key!r} in {self.root}")
        return matches[0]

    def _journal(self, entry: JobEntry) -> Journal:
        return self._journals[entry.arm]

    # -- detail -----------------------------------------------------------------

    def sidecar(self, entry: JobEntry) -> dict[str, Any]:
        if not entry.sidecar:
            return {}
        path = contained(self.root, entry.sidecar)
        return (_read_json(path) if path else None) or {}

    def detail(self, key: str) -> dict[str, Any]:
        """Everything the job view shows for ``key`` (paths relative to OUTDIR)."""
        entry = self.find(key)
        side = self.sidecar(entry)
        prefix = "" if entry.arm is None else f"{entry.arm}/"
        metrics = _as_dict(side.get("compare"))
        sent = []
        canvas = side.get("canvas")
        if isinstance(canvas, dict) and canvas.get("path"):
            sent.append({"name": "canvas", "path": prefix + str(canvas["path"])})
        elif side.get("references_sent"):
            for ref in side["references_sent"]:
                if isinstance(ref, dict) and ref.get("path"):
                    sent.append(
                        {"name": str(ref.get("name", "")), "path": prefix + str(ref["path"])}
                    )
        thumbs = {}
        row = None
        if self.kind != "run":
            row = self._journal(entry).get(entry.job_id)
            thumbs = (row.thumbs if row else None) or {}
        sources = []
        src_thumbs = thumbs.get("sources") or []
        for i, src in enumerate(side.get("sources") or []):
            if not isinstance(src, dict):
                continue
            t = src_thumbs[i] if i < len(src_thumbs) else None
            sources.append(
                {
                    "name": src.get("name"),
                    "source": Path(str(src.get("source", ""))).name,
                    "thumb": (prefix + str(t)) if t else None,
                }
            )
        cands = []
        for c in side.get("candidates") or []:
            if not isinstance(c, dict):
                continue
            cands.append(
                {
                    "index": c.get("index"),
                    "seed": c.get("seed"),
                    "chosen": bool(c.get("chosen")),
                    "passed": c.get("passed"),
                    "score": c.get("score"),
                    "output": (prefix + str(c["output"])) if c.get("output") else None,
                    "state": c.get("state"),
                }
            )
        sheet = side.get("sheet")
        pairs = []
        if self.kind == "ab":
            pair = self._pair_of.get((entry.arm or "", entry.job_id))

            def same_pair(e: JobEntry) -> bool:
                if pair is not None:
                    return self._pair_of.get((e.arm or "", e.job_id)) == pair
                return e.line is not None and e.line == entry.line

            pairs = [
                {
                    "key": e.key,
                    "arm": e.arm,
                    "output": e.output,
                    "checks": e.checks_verdict,
                    "updated": e.updated,
                }
                for e in self.jobs()
                if same_pair(e)
            ]
        history = [_review_dict(r) for r in self._journal(entry).review_history(entry.job_id)]
        return {
            **entry.compact(),
            "prompt": side.get("prompt"),
            "model": side.get("model"),
            "seed": side.get("seed"),
            "recipe": (side.get("recipe") or {}).get("name")
            if isinstance(side.get("recipe"), dict)
            else side.get("recipe"),
            "sources": sources,
            "sent": sent,
            "sheet": (prefix + str(sheet)) if sheet else None,
            "metrics": _key_metrics(metrics),
            "overlays": _overlays(metrics),
            "check_list": [
                {
                    "name": name,
                    "pass": c.get("pass"),
                    "value": c.get("value"),
                    "expected": c.get("expected"),
                    "reason": c.get("reason"),
                }
                for name, c in entry.checks.items()
                if isinstance(c, dict)
            ],
            "candidate_list": cands,
            "chosen": side.get("chosen"),
            "chosen_by": side.get("chosen_by"),
            "arms": pairs,
            "history": history,
            "review": next(
                (
                    _review_dict(r)
                    for r in reversed(self._journal(entry).review_history(entry.job_id))
                    if r.verdict in ("approve", "reject")
                ),
                None,
            ),
        }

    def target_source(self, key: str) -> tuple[Path, tuple[int, int, int, int] | None] | None:
        """The file that holds the target as sent, and its cell box in it (None: the whole).

        The target is the source named ``target``, else the last one. From the canvas (its
        cell) when one was sent, else from the reference sent for it.
        """
        entry = self.find(key)
        side = self.sidecar(entry)
        prefix = "" if entry.arm is None else f"{entry.arm}/"
        canvas = side.get("canvas")
        if isinstance(canvas, dict) and canvas.get("path") and canvas.get("cells"):
            cells = [c for c in canvas["cells"] if isinstance(c, dict)]
            cell = next((c for c in cells if c.get("name") == "target"), cells[-1])
            path = contained(self.root, prefix + str(canvas["path"]))
            if path is None:
                return None
            box = (
                int(cell["x"]),
                int(cell["y"]),
                int(cell["x"]) + int(cell["w"]),
                int(cell["y"]) + int(cell["h"]),
            )
            return path, box
        refs = [
            r for r in side.get("references_sent") or [] if isinstance(r, dict) and r.get("path")
        ]
        if refs:
            ref = next((r for r in refs if r.get("name") == "target"), refs[-1])
            path = contained(self.root, prefix + str(ref["path"]))
            return None if path is None else (path, None)
        return None

    # -- reviews ----------------------------------------------------------------

    def current(self) -> dict[str, ReviewRow]:
        """Each reviewed job's current verdict, by key."""
        out: dict[str, ReviewRow] = {}
        for arm, journal in self._journals.items():
            prefix = "" if arm is None else f"{arm}/"
            for job_id, review in journal.current_reviews().items():
                out[prefix + job_id] = review
        return out

    def record(self, key: str, given: Verdict) -> ReviewRow:
        """Record a person's verdict on ``key`` (committed before returning)."""
        entry = self.find(key)
        reasons = parse_reasons(given.reasons)  # an unknown reason is refused either way
        if given.verdict == "approve":
            reasons = ()
        side = self.sidecar(entry)
        chosen = side.get("chosen")
        with self._lock:
            return self._journal(entry).add_review(
                entry.job_id,
                given.verdict,
                reasons=reasons,
                note=given.note or None,
                reviewer=given.reviewer or self.reviewer,
                candidate=chosen if isinstance(chosen, int) else None,
                output_path=entry.output,
            )

    def choose(self, key: str, index: int, reviewer: str | None = None) -> dict[str, Any]:
        """Make candidate ``index`` (1-based) the job's output and record that.

        The candidate's file is copied over the job's output atomically (and its sheet and
        thumbnail), the sidecar says which candidate is chosen with that candidate's checks,
        the journal's output row follows, and a ``choose`` row goes into the history.
        """
        entry = self.find(key)
        side = self.sidecar(entry)
        cands = [c for c in side.get("candidates") or [] if isinstance(c, dict)]
        cand = next((c for c in cands if c.get("index") == index), None)
        if cand is None or not cand.get("output"):
            raise InputError(f"job {key!r} has no candidate {index}")
        prefix = "" if entry.arm is None else f"{entry.arm}/"
        src = contained(self.root, prefix + str(cand["output"]))
        out = contained(self.root, entry.output or "")
        side_path = contained(self.root, entry.sidecar or "")
        if src is None or out is None or side_path is None:
            raise InputError(f"job {key!r}: the candidate's files are missing")
        cand_side = {}
        if cand.get("sidecar"):
            p = contained(self.root, prefix + str(cand["sidecar"]))
            cand_side = (_read_json(p) if p else None) or {}
        with self._lock:
            data = src.read_bytes()
            write_bytes_atomic(out, data)
            if cand.get("sheet") and side.get("sheet"):
                s_src = contained(self.root, prefix + str(cand["sheet"]))
                s_dst = contained(self.root, prefix + str(side["sheet"]))
                if s_src is not None and s_dst is not None:
                    write_bytes_atomic(s_dst, s_src.read_bytes(), durable=False)
            self._copy_thumb(entry, index)
            for c in cands:
                c["chosen"] = c.get("index") == index
            side["chosen"] = index
            side["chosen_by"] = "person"
            side["seed"] = cand.get("seed", side.get("seed"))
            if cand_side:
                for k in ("compare", "checks", "passed"):
                    if k in cand_side:
                        side[k] = cand_side[k]
                if isinstance(cand_side.get("output"), dict):
                    side["output"] = {**cand_side["output"], "path": out.name}
            write_bytes_atomic(side_path, (json.dumps(side, indent=2, default=str) + "\n").encode())
            metrics = side.get("compare") if isinstance(side.get("compare"), dict) else None
            passed = side.get("passed") if isinstance(side.get("passed"), bool) else None
            journal = self._journal(entry)
            if self.kind != "run":
                journal.set_output(
                    entry.job_id, output_path=out, metrics=metrics, checks_passed=passed
                )
            journal.add_review(
                entry.job_id,
                "choose",
                candidate=index,
                reviewer=reviewer or self.reviewer,
                output_path=entry.output,
            )
        return self.detail(key)

    def _copy_thumb(self, entry: JobEntry, index: int) -> None:
        if self.kind == "run":
            return
        row = self._journal(entry).get(entry.job_id)
        thumbs = (row.thumbs if row else None) or {}
        base = self._base(entry.arm)
        for c in thumbs.get("candidates") or []:
            if c.get("index") == index and c.get("thumb") and thumbs.get("output"):
                t_src = contained(self.root, _rel(self.root, base / str(c["thumb"])) or "")
                t_dst = contained(self.root, _rel(self.root, base / str(thumbs["output"])) or "")
                if t_src is not None and t_dst is not None:
                    write_bytes_atomic(t_dst, t_src.read_bytes(), durable=False)

    # -- agreement and export -------------------------------------------------------

    def judged(self) -> list[tuple[JobEntry, ReviewRow]]:
        """The reviewed jobs with their current verdicts, in the jobs' order."""
        current = self.current()
        return [(e, current[e.key]) for e in self.jobs() if e.key in current]

    def agreement_input(self) -> list[Judged]:
        return [
            Judged(
                verdict=r.verdict,
                checks_verdict=e.checks_verdict,
                checks={
                    name: (c.get("pass") if isinstance(c, dict) else None)
                    for name, c in e.checks.items()
                },
            )
            for e, r in self.judged()
        ]

    def export_rows(self) -> list[dict[str, Any]]:
        return [
            export_row(e.key, r, checks=e.checks_verdict, output=e.output) for e, r in self.judged()
        ]


def _review_dict(r: ReviewRow) -> dict[str, Any]:
    return {
        "verdict": r.verdict,
        "reasons": list(r.reasons),
        "note": r.note,
        "reviewer": r.reviewer,
        "reviewed_at": r.reviewed_at,
        "candidate": r.candidate,
    }


def _key_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The key metrics the report has, by their labels (:data:`~fluxcompose.scoring.KEY_METRICS`)."""
    return {
        m.label: v
        for m in KEY_METRICS
        if (v := metric_at(metrics, m.path)) is not None and not isinstance(v, dict | list)
    }


def _overlays(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What the sheet draws, normalised 0..1 on the output: chest and garment boxes, the
    print found (its projected corners) and the edit region."""
    subject = _as_dict(metrics.get("subject"))
    pattern = _as_dict(metrics.get("pattern"))
    return {
        "chest_box": subject.get("chest_box"),
        "garment_box": subject.get("garment_box"),
        "garment_outline": subject.get("garment_outline"),
        "print_corners": pattern.get("corners") if pattern.get("found") else None,
        "edit_box": metric_at(metrics, ("edit_region", "box")),
    }
