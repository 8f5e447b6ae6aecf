"""Prepare a job: read and compose the sources, build the request, name the job. Sends nothing.

:func:`prepare_job` is the CPU half of a job (:mod:`fluxcompose.run` is the rest): the
settings resolved by :mod:`fluxcompose.request`, the sources read and composed into the
canvas (or each shrunk and encoded as a separate reference), the backend request checked
by ``validate_request``, the job id (a stable hash of what is asked) and its price.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from . import geometry, pricing
from .backends.base import GenerationRequest, OutputFormat, validate_request
from .compose import Composite, compose
from .images import SourceImage, encode_canvas, open_source
from .recipes import Recipe
from .request import (
    JobSettings,
    JobSpec,
    OutputSize,
    job_price,
    output_size,
    reference_budget,
    resolve_job,
    target_name,
)

__all__ = ["PreparedJob", "prepare_job", "public_ref"]


@dataclass
class PreparedJob:
    """A job with its CPU work done and nothing sent yet."""

    job_id: str
    spec: JobSpec
    composite: Composite | None
    canvas_bytes: bytes | None
    request: GenerationRequest
    price_usd: float
    backend_name: str
    sources: list[dict[str, Any]]
    aspect_ratio_rule: str
    timings: dict[str, float] = field(default_factory=dict)
    references: str = "stitched"  # how the sources were sent: "stitched" | "separate"
    # Each image sent, in order: {index (1-based), name, width, height, bytes, mime}.
    references_sent: list[dict[str, Any]] = field(default_factory=list)
    input_mps: tuple[float, ...] = ()  # each image sent, in megapixels (1,048,576 px)
    output_mp: float = 0.0  # the output asked for, in megapixels

    @property
    def request_bytes(self) -> int:
        """The image payload sent, summed over every image (before base64 or multipart)."""
        req = self.request
        first = len(req.input_image) if req.input_image is not None else 0
        return first + sum(len(data) for data, _ in req.more_images)

    @property
    def recipe_name(self) -> str | None:
        return self.spec.recipe.name if self.spec.recipe else None

    def describe(self) -> dict[str, Any]:
        """What would be sent, with the image elided (``--dry-run``)."""
        return {
            "job_id": self.job_id,
            "backend": self.backend_name,
            "recipe": self.recipe_name,
            "request": self.request.describe(),
            "aspect_ratio_rule": self.aspect_ratio_rule,
            "canvas": self.composite.to_dict() if self.composite else None,
            "references": self.references,
            "references_sent": [public_ref(r) for r in self.references_sent],
            "request_bytes": self.request_bytes,
            "sources": self.sources,
            "estimated_usd": self.price_usd,
        }


@dataclass
class _Canvas:
    """The composed sources: what the request carries and the sidecar records."""

    composite: Composite | None = None
    canvas_bytes: bytes | None = None
    canvas_mime: str = "image/png"
    sources: list[dict[str, Any]] = field(default_factory=list)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # name/position -> (w, h)
    timings: dict[str, float] = field(default_factory=dict)
    # Separate references: (bytes, mime, (width, height)) per source, in order.
    references: list[tuple[bytes, str, tuple[int, int]]] = field(default_factory=list)
    reference_budget_px: int | None = None  # each reference's pixel budget, when separate


def _source_info(src: SourceImage, index: int, name: str) -> dict[str, Any]:
    return {
        "index": index,
        "name": name,
        "source": src.source,
        "sha256": src.sha256,
        "bytes": src.nbytes,
        "width": src.size[0],
        "height": src.size[1],
        "format": src.format,
        "orientation": src.orientation,
    }


def _compose_sources(sources: tuple[str, ...], settings: JobSettings) -> _Canvas:
    """Read the sources and compose them into the canvas, or (separate references)
    shrink and encode each one; nothing for text to image."""
    if not sources:
        return _Canvas()
    t0 = time.perf_counter()
    names = list(settings.source_names)
    opened: list[SourceImage] = [open_source(s) for s in sources]
    t_read = time.perf_counter()
    if settings.separate:
        return _encode_references(opened, names, settings, t0, t_read)
    co = settings.compose
    composite = compose(
        opened,
        layout=co.layout,
        gutter=co.gutter,
        gutter_color=co.gutter_color,
        background=co.background,
        labels=co.labels,
        outline=co.outline,
        megapixels=co.megapixels,
        upscale=co.upscale,
        names=names,
    )
    assert composite.image is not None
    encoded = encode_canvas(composite.image, settings.canvas_format, strips=composite.jpeg_strips())
    out = _Canvas(composite, encoded.data, encoded.mime)
    for i, (src, name) in enumerate(zip(opened, names, strict=True)):
        out.sizes[name] = src.size
        out.sizes[str(i + 1)] = src.size
        out.sources.append(_source_info(src, i, name))
    out.timings = {"read_s": t_read - t0, "compose_s": time.perf_counter() - t_read}
    return out


def _encode_references(
    opened: list[SourceImage],
    names: list[str],
    settings: JobSettings,
    t0: float,
    t_read: float,
) -> _Canvas:
    """Each source as its own reference: upright, shrunk on load to its budget (never
    enlarged), encoded like a canvas (JPEG q95 4:4:4, or PNG)."""
    out = _Canvas()
    for i, (src, name) in enumerate(zip(opened, names, strict=True)):
        out.sizes[name] = src.size
        out.sizes[str(i + 1)] = src.size
        out.sources.append(_source_info(src, i, name))
    size = output_size(settings, composite=None, source_sizes=out.sizes)
    budget = reference_budget(len(opened), settings.reference_megapixels, size.pixels)
    out.reference_budget_px = budget
    for src in opened:
        w, h = geometry.reference_size(src.size[0], src.size[1], budget)
        image = src.decode(None if (w, h) == src.size else (w, h))
        encoded = encode_canvas(image, settings.canvas_format)
        out.references.append((encoded.data, encoded.mime, image.size))
    out.timings = {"read_s": t_read - t0, "compose_s": time.perf_counter() - t_read}
    return out


def _build_request(spec: JobSpec, settings: JobSettings, canvas: _Canvas) -> GenerationRequest:
    """The backend request for a resolved, composed job."""
    recipe = spec.recipe
    names = list(settings.source_names)
    composite = canvas.composite
    size = output_size(settings, composite=composite, source_sizes=canvas.sizes)
    context: dict[str, Any] = {
        "recipe": recipe.name if recipe else None,
        "variables": settings.variables,
        "checks": dict(recipe.checks) if recipe else {},
        "layout": composite.to_dict() if composite else None,
        "source_names": names,
        "target": target_name(names),
    }
    if settings.separate:
        context["references"] = names  # the images are the cells, in this order
    if settings.subject_box is not None:
        context["subject_box"] = list(settings.subject_box)
    first: bytes | None = canvas.canvas_bytes
    mime = canvas.canvas_mime
    more: tuple[tuple[bytes, str], ...] = ()
    if canvas.references:
        first, mime = canvas.references[0][0], canvas.references[0][1]
        more = tuple((data, m) for data, m, _ in canvas.references[1:])
    request = GenerationRequest(
        # What the job's options resolved to,
        prompt=settings.prompt,
        model=settings.model,
        seed=settings.seed,
        safety_tolerance=settings.safety_tolerance,
        output_format=cast(OutputFormat, settings.output_format),
        prompt_upsampling=settings.prompt_upsampling,
        steps=settings.steps,
        guidance=settings.guidance,
        # the images as encoded, and what the local backend needs to imitate the recipe,
        input_image=first,
        input_mime=mime,
        more_images=more,
        context=context,
        # and the output's size as the model takes it.
        aspect_ratio=size.aspect_ratio,
        width=size.width,
        height=size.height,
    )
    # The one check against what the API would refuse (image count, sizes, ranges, and
    # for FLUX.2 inputs plus output within 9 MP): ConfigError, nothing sent.
    validate_request(request)
    return request


def prepare_job(spec: JobSpec, *, backend_name: str) -> PreparedJob:
    """Resolve the options, compose the sources and build the request. Sends nothing.

    Raises :class:`InputError` subclasses for bad images, recipes or options.
    """
    t0 = time.perf_counter()
    settings = resolve_job(spec)
    canvas = _compose_sources(spec.sources, settings)
    request = _build_request(spec, settings, canvas)
    sent = _references_sent(request, canvas, settings)
    input_mps = tuple(pricing.image_megapixels(r["width"], r["height"]) for r in sent)
    size = OutputSize(request.aspect_ratio, request.width, request.height)
    output_mp = size.pixels / geometry.MEGAPIXEL
    if size.width is not None and size.height is not None:
        output_mp = pricing.image_megapixels(size.width, size.height)
    job_id = spec.job_id or _job_hash(
        spec.recipe, request, canvas.sources, canvas.composite, backend_name, settings, sent
    )
    timings = {**canvas.timings, "prepare_s": time.perf_counter() - t0}
    return PreparedJob(
        job_id=job_id,
        spec=spec,
        composite=canvas.composite,
        canvas_bytes=canvas.canvas_bytes,
        request=request,
        price_usd=job_price(backend_name, settings.model, output_mp, input_mps),
        backend_name=backend_name,
        sources=canvas.sources,
        aspect_ratio_rule=settings.aspect_ratio_rule,
        timings=timings,
        references=settings.references,
        references_sent=sent,
        input_mps=input_mps,
        output_mp=output_mp,
    )


def _references_sent(
    request: GenerationRequest, canvas: _Canvas, settings: JobSettings
) -> list[dict[str, Any]]:
    """Each image the request carries, in order: {index, name, width, height, bytes, mime}."""
    if canvas.references:
        return [
            {
                "index": i + 1,
                "name": name,
                "width": w,
                "height": h,
                "bytes": len(data),
                "mime": mime,
            }
            for i, ((data, mime, (w, h)), name) in enumerate(
                zip(canvas.references, settings.source_names, strict=True)
            )
        ]
    if canvas.composite is not None and request.input_image is not None:
        return [
            {
                "index": 1,
                "name": "canvas",
                "width": canvas.composite.width,
                "height": canvas.composite.height,
                "bytes": len(request.input_image),
                "mime": request.input_mime,
            }
        ]
    return []


def public_ref(ref: Mapping[str, Any]) -> dict[str, Any]:
    """An entry of ``references_sent`` as the sidecar shows it (without its mime type)."""
    return {k: v for k, v in ref.items() if k != "mime"}


def _job_hash(
    recipe: Recipe | None,
    request: GenerationRequest,
    sources: list[dict[str, Any]],
    composite: Composite | None,
    backend_name: str,
    settings: JobSettings,
    sent: list[dict[str, Any]],
) -> str:
    """A short stable id: the same recipe, prompt, parameters and source content give the same id.

    The backend is part of it: a free local preview must not make a later paid run
    on the same OUTDIR look already done.
    """
    described = request.describe() | {"input_image": None, "input_mime": None}
    if "more_images" in described:
        described["more_images"] = None  # their encoding, like the canvas's, is left out
    recipe_dict = recipe.to_dict() if recipe else None
    if recipe_dict is not None and not settings.separate:
        # A stitched job never uses prompt_separate: leaving it out keeps the ids
        # stitched jobs had before recipes gained it.
        recipe_dict.pop("prompt_separate", None)
    basis: dict[str, Any] = {
        "backend": backend_name,
        "recipe": recipe_dict,
        # How the canvas is encoded (PNG or JPEG) does not change what is asked: leaving it
        # out keeps the ids of jobs journalled before JPEG canvases, so none is paid twice.
        "request": described,
        "sources": [s["sha256"] for s in sources],
        "canvas": None
        if composite is None
        else [composite.width, composite.height, composite.layout],
    }
    if "subject_box" in request.context:
        # A different chest box makes a different preview and different checks; jobs
        # without one keep the ids earlier versions gave them.
        basis["subject_box"] = request.context["subject_box"]
    if settings.separate:
        basis["references"] = [[r["width"], r["height"]] for r in sent]
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()
    prefix = recipe.name if recipe else "prompt"
    return f"{prefix}-{digest[:12]}"
