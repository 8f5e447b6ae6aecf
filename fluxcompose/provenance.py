"""Provenance: what a finished job wrote and the sidecar ``<job>.json`` that records it.

:func:`build_sidecar` is the one serialisation of a job's provenance (recipe, prompt,
request, sources with their hashes, canvas layout, cost, timings, compare metrics and
checks; never an API key: the request carries none) and :func:`write_sidecar` the one
writer, used by a single job and by best-of-N's chosen job alike. :func:`cost_record`
says what a job cost, the provider's word when its reply carried one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import pricing
from .images import write_bytes_atomic
from .prepare import PreparedJob, public_ref

__all__ = [
    "BILLED_KEYS",
    "JobOutcome",
    "billed_fields",
    "build_sidecar",
    "cost_record",
    "public_task_id",
    "write_sidecar",
]

# The price fields of a result's ``extra`` (the provider's word on what it billed).
BILLED_KEYS = ("cost_credits", "input_mp", "output_mp")


@dataclass
class JobOutcome:
    """What a finished job wrote."""

    job_id: str
    output_path: Path
    canvas_path: Path | None
    sidecar_path: Path
    sheet_path: Path | None
    sidecar: dict[str, Any]
    metrics: dict[str, Any] | None
    checks_passed: bool | None
    cost_usd: float  # what the provider billed when its reply said, else the estimate
    reference_paths: list[Path] = field(default_factory=list)  # separate: <job>.refN.<ext>


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def cost_record(prepared: PreparedJob, billed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the job cost: ``{"estimated_usd", "billed_credits", "input_mp", "output_mp",
    "source", "usd"}``. ``source`` is ``provider`` when the reply carried ``cost_credits``
    (1 credit = $0.01, the truth about what was paid), else ``estimate``; the megapixels
    are the provider's when it gave them, else ours (1 MP = 1,048,576 px)."""
    billed = billed or {}
    credits = _number(billed.get("cost_credits"))
    input_mp = _number(billed.get("input_mp"))
    output_mp = _number(billed.get("output_mp"))
    return {
        "estimated_usd": prepared.price_usd,
        "billed_credits": credits,
        "input_mp": round(sum(prepared.input_mps) if input_mp is None else input_mp, 6),
        "output_mp": round(prepared.output_mp if output_mp is None else output_mp, 6),
        "source": "estimate" if credits is None else "provider",
        "usd": prepared.price_usd if credits is None else pricing.credits_to_usd(credits),
    }


def billed_fields(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The price fields of a result's ``extra``: all that :func:`cost_record` reads of it."""
    return {k: extra[k] for k in BILLED_KEYS if extra and k in extra}


def _number(value: Any) -> float | None:
    """A finite number as float, else None (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def write_sidecar(outdir: Path, job_id: str, sidecar: Mapping[str, Any]) -> Path:
    """Write ``<job>.json`` atomically and durably: the provenance of a paid result."""
    data = (json.dumps(sidecar, indent=2, default=str) + "\n").encode()
    return write_bytes_atomic(outdir / f"{job_id}.json", data)


def build_sidecar(
    prepared: PreparedJob,
    *,
    output_path: Path,
    canvas_path: Path | None,
    sheet_path: Path | None,
    metrics: dict[str, Any] | None,
    backend_name: str,
    task_id: str | None,
    timings: Mapping[str, float],
    billed: Mapping[str, Any] | None = None,
    reference_paths: list[Path] | None = None,
) -> dict[str, Any]:
    """The provenance record. It never holds an API key: the request carries none."""
    from . import __version__

    recipe = prepared.spec.recipe
    req = prepared.request
    out_info: dict[str, Any] = {"path": output_path.name}
    try:
        data = output_path.read_bytes()
        out_info["sha256"] = hashlib.sha256(data).hexdigest()
        out_info["bytes"] = len(data)
        from PIL import Image

        with Image.open(output_path) as im:
            out_info["width"], out_info["height"] = im.size
            out_info["format"] = (im.format or "").lower()
    except OSError:
        pass
    cost = cost_record(prepared, billed)
    usd = cost.pop("usd")
    paths = [p.name for p in reference_paths or []]
    sent = [
        {**public_ref(r), "path": paths[i] if i < len(paths) else None}
        for i, r in enumerate(prepared.references_sent)
    ]
    if prepared.references != "separate" and sent and canvas_path is not None:
        sent[0]["path"] = canvas_path.name
    return {
        "job_id": prepared.job_id,
        "created": _now(),
        "fluxcompose": __version__,
        "recipe": None
        if recipe is None
        else {"name": recipe.name, "path": str(recipe.path) if recipe.path else None},
        "prompt": req.prompt,
        "variables": req.context.get("variables", {}),
        "backend": backend_name,
        "model": req.model,
        "seed": req.seed,
        "aspect_ratio": req.aspect_ratio,
        "aspect_ratio_rule": prepared.aspect_ratio_rule,
        "request": req.describe(),
        # The image payload as sent (every image file's size, summed), before any base64
        # or multipart framing; 0 for text-to-image.
        "request_bytes": prepared.request_bytes,
        "references": prepared.references,
        "references_sent": sent,
        "task_id": public_task_id(task_id),
        "sources": prepared.sources,
        "canvas": None
        if prepared.composite is None
        else {"path": canvas_path.name if canvas_path else None, **prepared.composite.to_dict()},
        "output": out_info,
        "sheet": sheet_path.name if sheet_path else None,
        "cost_usd": usd,
        "cost": cost,
        # What the backend said about its work: the local preview's method, the subject
        # it found and its warnings (no subject, placement words not understood).
        "backend_notes": _backend_notes(billed),
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "compare": metrics,
        "checks": None if metrics is None else metrics.get("checks"),
        "passed": None if metrics is None else metrics.get("passed"),
    }


def _backend_notes(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON-safe part of a result's ``extra`` (plain values, lists and dicts)."""

    def plain(value: Any) -> bool:
        if isinstance(value, str | int | float | bool) or value is None:
            return True
        if isinstance(value, list | tuple):
            return all(plain(v) for v in value)
        if isinstance(value, Mapping):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        return False

    return {k: v for k, v in (extra or {}).items() if plain(v)}


def public_task_id(task_id: str | None) -> str | None:
    """The provider's task id without any polling URL attached to it."""
    if not task_id:
        return None
    if task_id.lstrip().startswith("{"):
        try:
            data = json.loads(task_id)
            return str(data.get("id") or task_id)
        except json.JSONDecodeError:
            return task_id
    return task_id.split("|", 1)[0]
