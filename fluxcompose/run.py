"""One job, end to end: compose -> request -> download -> compare -> write.

The pipeline is split at its I/O seams so that ``batch`` runs the very same
steps on different threads:

* :func:`prepare_job` - CPU: read and compose the sources, render the prompt,
  build the request, work out the job id and price. Sends nothing.
* :func:`generate_with_retries` - network: one paid generation, retried only
  where that is safe.
* :func:`save_result` - network: download the result at once (links expire).
* :func:`finish_job` - CPU: canvas, compare, sheet and the provenance sidecar.

:func:`run_job` chains them for ``fluxcompose run``.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from . import geometry, pricing
from .backends.base import (
    Backend,
    GenerationRequest,
    GenerationResult,
    OnSubmitted,
    OutputFormat,
    validate_request,
)
from .compose import Composite, compose
from .download import download_result, write_result_bytes
from .errors import (
    ConfigError,
    GenerationError,
    InputError,
    RateLimited,
    RatioError,
    RetryableError,
    TransientError,
)
from .images import (
    DEFAULT_CANVAS_FORMAT,
    SourceImage,
    canvas_extension,
    encode_canvas,
    open_source,
    write_bytes_atomic,
)
from .locate import Box, parse_box
from .models import GUIDANCE_RANGE, MAX_TOTAL_PIXELS, STEPS_RANGE, model_spec
from .recipes import REFERENCE_MODES, Recipe

__all__ = [
    "ComposeOptions",
    "JobOutcome",
    "ComposeSettings",
    "JobSettings",
    "JobSpec",
    "PreparedJob",
    "RequestOptions",
    "finish_job",
    "generate_once",
    "generate_with_retries",
    "prepare_job",
    "resolve_aspect_ratio",
    "resolve_job",
    "resolve_model",
    "complete_job",
    "run_job",
    "write_sidecar",
    "save_result",
    "typical_price",
    "warm_up",
]

DEFAULT_MODEL = "flux-kontext-pro"
DEFAULT_SAFETY = 2
DEFAULT_FORMAT = "png"
OUTPUT_FORMATS = ("png", "jpeg", "webp")  # which one a model writes: validate_request
DEFAULT_REFERENCE_MEGAPIXELS = 1.0  # each separate reference at most this, in 1,048,576 px
MEGA = geometry.MEGAPIXEL
RETRY_AFTER_DEFAULT = 5.0  # seconds to wait on a 429 that names no Retry-After
RETRY_AFTER_MAX = 120.0
BACKOFF_BASE = 1.0  # seconds; doubled per attempt, with full jitter
BACKOFF_MAX = 30.0
DOWNLOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class RequestOptions:
    """Overrides for the backend request; ``None`` means the recipe's default."""

    model: str | None = None
    seed: int | None = None
    aspect_ratio: str | None = None  # "W:H" | "canvas" | "match:NAME"
    safety_tolerance: int | None = None
    output_format: str | None = None  # "png" | "jpeg"
    prompt_upsampling: bool | None = None
    canvas_format: str | None = None  # how the canvas is sent: "jpeg" (default) | "png"
    # FLUX.2 and native multi-reference (DESIGN.md section 11); None: the model's default.
    references: str | None = None  # "stitched" | "separate"
    reference_megapixels: float | None = None  # each separate reference at most this (1.0)
    megapixels: float | None = None  # FLUX.2 output size budget (1.0)
    steps: int | None = None  # flux-2-flex: 1..50
    guidance: float | None = None  # flux-2-flex: 1.5..10


@dataclass(frozen=True)
class ComposeOptions:
    """Overrides for the composition engine; ``None`` means the recipe's default."""

    layout: str | None = None
    gutter: int | None = None
    gutter_color: str | None = None
    background: str | None = None
    labels: bool | None = None
    outline: bool | None = None
    megapixels: float | None = None
    upscale: bool | None = None


@dataclass(frozen=True)
class JobSpec:
    """Everything that defines a job, before any I/O."""

    recipe: Recipe | None
    sources: tuple[str, ...] = ()
    prompt: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    request: RequestOptions = field(default_factory=RequestOptions)
    compose: ComposeOptions = field(default_factory=ComposeOptions)
    job_id: str | None = None
    subject_box: Box | None = None  # the chest box on the target, given by hand


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
            "references_sent": [_public_ref(r) for r in self.references_sent],
            "request_bytes": self.request_bytes,
            "sources": self.sources,
            "estimated_usd": self.price_usd,
        }


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


# --------------------------------------------------------------------------- prepare


def _pick(option: Any, recipe: Recipe | None, table: str, key: str, default: Any) -> Any:
    """The option if set, else the recipe's ``[table] key``, else ``default``."""
    if option is not None:
        return option
    if recipe is not None:
        value = getattr(recipe, table).get(key)
        if value is not None:
            return value
    return default


def takes_size(model: str) -> bool:
    """Whether ``model`` takes ``width``/``height`` (FLUX.2) rather than ``aspect_ratio``."""
    return model_spec(model).size_fields == "width_height"


def resolve_model(recipe: Recipe | None, override: str | None) -> str:
    """The model a job uses: the option, else the recipe's, else flux-kontext-pro."""
    return str(_pick(override, recipe, "request", "model", DEFAULT_MODEL))


@dataclass(frozen=True)
class ComposeSettings:
    """The canvas options after the recipe's defaults: what :func:`compose` is called with."""

    layout: str = "auto"
    gutter: int = 0  # pixels
    gutter_color: str | None = None
    background: str = "white"
    labels: bool = False
    outline: bool = False
    megapixels: float = 1.0  # canvas budget, in units of 1024 x 1024
    upscale: bool = True


@dataclass(frozen=True)
class JobSettings:
    """A job's options resolved once: the spec's, else the recipe's, else the defaults."""

    prompt: str  # rendered, never empty
    variables: dict[str, str]  # the recipe's defaults with the job's on top
    model: str
    seed: int | None
    safety_tolerance: int  # 0..6
    output_format: str  # "png" | "jpeg"
    prompt_upsampling: bool
    aspect_ratio_rule: str  # "W:H" | "canvas" | "match:NAME"
    source_names: tuple[str, ...]
    compose: ComposeSettings
    canvas_format: str = DEFAULT_CANVAS_FORMAT  # "jpeg" | "png"
    subject_box: Box | None = None  # the chest box on the target, given by hand
    references: str = "stitched"  # "stitched" | "separate"
    reference_megapixels: float = DEFAULT_REFERENCE_MEGAPIXELS  # per separate reference
    output_megapixels: float = 1.0  # FLUX.2 output budget (the canvas budget unless set)
    steps: int | None = None  # flux-2-flex: 1..50
    guidance: float | None = None  # flux-2-flex: 1.5..10

    @property
    def separate(self) -> bool:
        return self.references == "separate"

    @property
    def sized(self) -> bool:
        """The model takes width/height (FLUX.2)."""
        return takes_size(self.model)


def resolve_job(spec: JobSpec) -> JobSettings:
    """Check the spec and resolve every option; reads no file.

    Raises :class:`InputError` subclasses for a bad recipe/source count, prompt or option.
    """
    recipe = spec.recipe
    n = len(spec.sources)
    if recipe is None and spec.prompt is None:
        raise ConfigError("give a --recipe or a --prompt")
    if recipe is not None and n and len(recipe.sources) != n:
        raise InputError(
            f"recipe {recipe.name!r} takes {len(recipe.sources)} image(s) "
            f"({', '.join(recipe.sources)}), got {n}"
        )
    if recipe is not None and n == 0 and spec.prompt is None:
        raise InputError(
            f"recipe {recipe.name!r} needs {len(recipe.sources)} image(s) ({', '.join(recipe.sources)})"
        )
    if n > geometry.MAX_SOURCES:
        raise InputError(f"at most {geometry.MAX_SOURCES} images per job, got {n}")
    subject_box = None if spec.subject_box is None else parse_box(spec.subject_box)
    if subject_box is not None and n == 0:
        raise InputError("--subject-box needs a target image; this job has none")

    ro = spec.request
    model = resolve_model(recipe, ro.model)
    spec_ = model_spec(model)  # ConfigError naming the choices for an unknown model
    references = str(
        _pick(ro.references, recipe, "request", "references", spec_.default_references)
    )
    if references not in REFERENCE_MODES:
        raise ConfigError(f"references must be stitched or separate, got {references!r}")
    if n == 0:
        references = "stitched"  # text to image: nothing to send either way
    separate = references == "separate"
    if separate and n > spec_.max_references:
        raise ConfigError(
            f"{model} takes at most {spec_.max_references} separate reference images, "
            f"got {n}; use --references stitched"
        )

    if recipe is not None:
        prompt = recipe.render(spec.variables, spec.prompt, separate=separate)
        variables = {**recipe.variables, **dict(spec.variables)}
    else:
        if spec.variables:
            prompt = Recipe(
                name="prompt", description="", sources=(), prompt=spec.prompt or ""
            ).render(spec.variables, spec.prompt)
        else:
            prompt = spec.prompt or ""
        variables = dict(spec.variables)
    if not prompt.strip():
        raise InputError("the prompt is empty")

    seed = _pick(ro.seed, recipe, "request", "seed", None)
    safety = _pick(ro.safety_tolerance, recipe, "request", "safety_tolerance", DEFAULT_SAFETY)
    fmt = _pick(ro.output_format, recipe, "request", "output_format", DEFAULT_FORMAT)
    fmt = "jpeg" if fmt == "jpg" else fmt
    upsampling = bool(_pick(ro.prompt_upsampling, recipe, "request", "prompt_upsampling", False))
    _check_request(model, safety, fmt, seed)
    steps = _pick(ro.steps, recipe, "request", "steps", None)
    guidance = _pick(ro.guidance, recipe, "request", "guidance", None)
    _check_flex(model, steps, guidance)
    co = spec.compose
    canvas_mp = float(_pick(co.megapixels, recipe, "compose", "megapixels", 1.0))
    # One --megapixels: the canvas budget and the FLUX.2 output budget alike.
    output_mp = float(ro.megapixels if ro.megapixels is not None else canvas_mp)
    ref_mp = float(
        _pick(
            ro.reference_megapixels,
            recipe,
            "request",
            "reference_megapixels",
            DEFAULT_REFERENCE_MEGAPIXELS,
        )
    )
    _check_budgets(model, output_mp, ref_mp)
    default_rule = "1:1" if n == 0 else ("match:image1" if n == 1 else "canvas")
    if n == 0 and ro.aspect_ratio is None:
        # Text to image: a recipe's canvas/match rule has no image to follow.
        rule = default_rule
    else:
        rule = str(_pick(ro.aspect_ratio, recipe, "request", "aspect_ratio", default_rule))
    names = tuple(_source_names(recipe, n))
    if separate and rule.strip() == "canvas":
        # No canvas is made: its stand-in is the edited image (the target).
        rule = f"match:{_target_name(list(names))}"

    return JobSettings(
        prompt=prompt,
        variables=variables,
        model=model,
        seed=seed,
        safety_tolerance=safety,
        output_format=fmt,
        prompt_upsampling=upsampling,
        aspect_ratio_rule=rule,
        source_names=names,
        compose=ComposeSettings(
            layout=_pick(co.layout, recipe, "compose", "layout", "auto"),
            gutter=int(_pick(co.gutter, recipe, "compose", "gutter", 0)),
            gutter_color=_pick(co.gutter_color, recipe, "compose", "gutter_color", None),
            background=_pick(co.background, recipe, "compose", "background", "white"),
            labels=bool(_pick(co.labels, recipe, "compose", "labels", False)),
            outline=bool(_pick(co.outline, recipe, "compose", "outline", False)),
            megapixels=canvas_mp,
            upscale=bool(_pick(co.upscale, recipe, "compose", "upscale", True)),
        ),
        canvas_format=ro.canvas_format or DEFAULT_CANVAS_FORMAT,
        subject_box=subject_box,
        references=references,
        reference_megapixels=ref_mp,
        output_megapixels=output_mp,
        steps=None if steps is None else int(steps),
        guidance=None if guidance is None else float(guidance),
    )


def resolve_aspect_ratio(
    rule: str,
    *,
    composite: Composite | None,
    source_sizes: Mapping[str, tuple[int, int]],
) -> str:
    """The ``W:H`` to send for ``rule`` (``W:H``, ``canvas`` or ``match:NAME``), clamped into 3:7..7:3.

    ``source_sizes`` maps source names (and 1-based positions as strings) to
    their upright sizes in pixels.
    """
    rule = rule.strip()
    if rule == "canvas":
        if composite is None:
            raise ConfigError("aspect ratio 'canvas' needs input images; give a ratio like 16:9")
        return composite.aspect_ratio
    if rule.startswith("match:"):
        name = rule[len("match:") :]
        if name not in source_sizes:
            known = ", ".join(k for k in source_sizes if not k.isdigit()) or "none"
            raise ConfigError(f"aspect ratio {rule!r}: no source named {name!r} (sources: {known})")
        w, h = source_sizes[name]
        return _ratio_text(w / h, w, h)
    return str(geometry.parse_ratio(rule))


def _ratio_text(aspect: float, w: int, h: int) -> str:
    """A short ``W:H`` for a pixel size: exact when small (4:3), else close (within ~1 %)."""
    clamped = geometry.clamp_aspect(aspect)
    if clamped == aspect:
        exact = geometry.ratio_string(w, h)
        a, b = (int(x) for x in exact.split(":"))
        if max(a, b) <= 64:
            return exact
    return geometry.simple_ratio_string(clamped)


def _check_request(model: str, safety: Any, fmt: Any, seed: Any) -> None:
    low, top = model_spec(model).safety_range
    if isinstance(safety, bool) or not isinstance(safety, int) or not low <= safety <= top:
        raise ConfigError(
            f"safety tolerance for {model} must be a whole number from {low} to {top}, "
            f"got {safety!r}"
        )
    if fmt not in OUTPUT_FORMATS:
        raise ConfigError(f"output format must be png, jpeg or webp, got {fmt!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"seed must be a whole number >= 0, got {seed!r}")


def _check_flex(model: str, steps: Any, guidance: Any) -> None:
    """--steps and --guidance: flux-2-flex's only, in STEPS_RANGE and GUIDANCE_RANGE."""
    for name, value in (("steps", steps), ("guidance", guidance)):
        if value is not None and not model_spec(model).tunable:
            raise ConfigError(f"--{name} is for flux-2-flex only, not {model}")
    lo, hi = STEPS_RANGE
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, int) or not lo <= steps <= hi
    ):
        raise ConfigError(f"steps must be a whole number from {lo} to {hi}, got {steps!r}")
    g_lo, g_hi = GUIDANCE_RANGE
    if guidance is not None and (
        isinstance(guidance, bool)
        or not isinstance(guidance, int | float)
        or not g_lo <= guidance <= g_hi
    ):
        raise ConfigError(f"guidance must be a number from {g_lo:g} to {g_hi:g}, got {guidance!r}")


def _check_budgets(model: str, output_mp: float, reference_mp: float) -> None:
    """The FLUX.2 output is at most 4 MP; a reference's budget is in (0, 4] MP."""
    if takes_size(model) and not 0 < output_mp <= geometry.FLUX2_MAX_MEGAPIXELS:
        raise ConfigError(
            f"{model} makes at most {geometry.FLUX2_MAX_MEGAPIXELS:g} MP: "
            f"--megapixels {output_mp:g} is too large"
        )
    if not 0 < reference_mp <= geometry.FLUX2_MAX_MEGAPIXELS:
        raise ConfigError(
            f"--reference-megapixels must be more than 0 and at most "
            f"{geometry.FLUX2_MAX_MEGAPIXELS:g}, got {reference_mp:g}"
        )


def _source_names(recipe: Recipe | None, n: int) -> list[str]:
    if recipe is not None and len(recipe.sources) == n:
        return list(recipe.sources)
    return [f"image{i + 1}" for i in range(n)]


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


@dataclass(frozen=True)
class OutputSize:
    """The output asked for: ``aspect_ratio`` always (Kontext's size field), and
    ``width``/``height`` in pixels for models that take a size (FLUX.2)."""

    aspect_ratio: str
    width: int | None = None
    height: int | None = None

    @property
    def pixels(self) -> int:
        """The output's area: width x height, or Kontext's bucket for the ratio."""
        if self.width is not None and self.height is not None:
            return self.width * self.height
        bw, bh = geometry.bucket_for(self.aspect_ratio)
        return bw * bh


def output_size(
    settings: JobSettings,
    *,
    composite: Composite | None,
    source_sizes: Mapping[str, tuple[int, int]],
) -> OutputSize:
    """The output's ratio by the aspect rule, and for FLUX.2 its width/height
    (:func:`geometry.flux2_size` at ``settings.output_megapixels``)."""
    ratio = resolve_aspect_ratio(
        settings.aspect_ratio_rule, composite=composite, source_sizes=source_sizes
    )
    if not settings.sized:
        return OutputSize(ratio)
    try:
        w, h = geometry.flux2_size(ratio, settings.output_megapixels)
    except RatioError as exc:
        raise ConfigError(str(exc)) from None
    return OutputSize(ratio, w, h)


def reference_budget(n: int, reference_mp: float, output_pixels: int) -> int:
    """Pixels each of ``n`` separate references may have: ``reference_mp`` megapixels, or
    less when inputs plus output would pass 9 MP (the references shrink, the output stays)."""
    cap = MAX_TOTAL_PIXELS
    share = (cap - output_pixels) / max(n, 1)
    return int(min(reference_mp * geometry.MEGAPIXEL, share))


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
    encoded = encode_canvas(composite.image, settings.canvas_format)
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
        "target": _target_name(names),
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
        prompt=settings.prompt,
        model=settings.model,
        input_image=first,
        input_mime=mime,
        aspect_ratio=size.aspect_ratio,
        seed=settings.seed,
        safety_tolerance=settings.safety_tolerance,
        output_format=cast(OutputFormat, settings.output_format),
        prompt_upsampling=settings.prompt_upsampling,
        context=context,
        more_images=more,
        width=size.width,
        height=size.height,
        steps=settings.steps,
        guidance=settings.guidance,
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


def job_price(
    backend_name: str, model: str, output_mp: float, input_mps: tuple[float, ...]
) -> float:
    """The estimated USD for one call: per megapixel for FLUX.2 (output plus every image
    sent, :func:`pricing.price_usd`), per call for Kontext."""
    return pricing.price_usd(backend_name, model, output_mp=output_mp, input_mps=input_mps)


def typical_price(spec: JobSpec, backend_name: str, n_sources: int) -> float:
    """The estimated USD of one job of ``spec`` with ``n_sources`` images, before any image
    is read: each separate reference at its full budget (or the stitched canvas at its
    budget) and the output at its budget. Exact for Kontext (per call); for FLUX.2 a
    job's own price (:attr:`PreparedJob.price_usd`) is what the budget reserves."""
    model = resolve_model(spec.recipe, spec.request.model)
    try:
        settings = resolve_job(
            replace(spec, sources=tuple(f"image{i + 1}" for i in range(n_sources)))
        )
    except InputError:
        return pricing.price_per_call(backend_name, model)
    if not settings.sized:
        return pricing.price_per_call(backend_name, model)
    if n_sources == 0:
        inputs: tuple[float, ...] = ()
    elif settings.separate:
        share = reference_budget(
            n_sources, settings.reference_megapixels, int(settings.output_megapixels * MEGA)
        )
        inputs = (share / MEGA,) * n_sources
    else:
        inputs = (settings.compose.megapixels,)
    return job_price(backend_name, model, settings.output_megapixels, inputs)


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


def _public_ref(ref: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ref.items() if k != "mime"}


def _target_name(names: list[str]) -> str | None:
    if not names:
        return None
    return "target" if "target" in names else names[-1]


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


# --------------------------------------------------------------------------- generate


def warm_up(backend: Backend) -> None:
    """Start the backend's one-time set-up (an SDK import, its client) on a background
    thread, so it overlaps composing instead of delaying the first request."""
    warm = getattr(backend, "warm_up", None)
    if callable(warm):
        threading.Thread(target=warm, name="fluxcompose-warm-up", daemon=True).start()


def generate_once(
    backend: Backend,
    prepared: PreparedJob,
    *,
    on_submitted: OnSubmitted | None = None,
    resume_task_id: str | None = None,
) -> GenerationResult:
    """One attempt at the generation (a paid call unless ``resume_task_id`` is given)."""
    try:
        return backend.generate(
            prepared.request, on_submitted=on_submitted, resume_task_id=resume_task_id
        )
    except GenerationError as exc:
        exc.job_id = exc.job_id or prepared.job_id
        raise


def retry_delay(exc: BaseException, attempt: int, *, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after ``exc`` (a RetryableError).

    429 honours Retry-After; other transient errors back off exponentially with
    full jitter: uniform(0, min(30, 1 * 2**(attempt-1))) plus a small floor.
    """
    if isinstance(exc, RateLimited):
        after = exc.retry_after if exc.retry_after is not None else RETRY_AFTER_DEFAULT
        return min(max(after, 0.0), RETRY_AFTER_MAX)
    cap = min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** max(attempt - 1, 0))
    r = (rng or random).uniform(0.0, cap)
    return 0.1 * cap + 0.9 * r


def generate_with_retries(
    backend: Backend,
    prepared: PreparedJob,
    *,
    max_attempts: int = 4,
    on_submitted: OnSubmitted | None = None,
    resume_task_id: str | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    stop: threading.Event | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> GenerationResult:
    """Generate, retrying what is safe to retry, up to ``max_attempts`` attempts.

    A 429 waits for Retry-After; 5xx, timeouts and dropped connections back off
    exponentially with jitter; everything else is raised at once. A resumable
    backend (BFL) that already accepted the task is polled again by its id
    instead of being paid for twice. When ``stop`` is set, no new attempt starts
    and the last error is raised.
    """
    if max_attempts < 1:
        raise ConfigError("max attempts must be at least 1")
    task_id = resume_task_id

    def remember(tid: str) -> None:
        nonlocal task_id
        task_id = tid
        if on_submitted is not None:
            on_submitted(tid)

    attempt = 0
    while True:
        attempt += 1
        try:
            resume = task_id if backend.resumable else None
            return generate_once(backend, prepared, on_submitted=remember, resume_task_id=resume)
        except RetryableError as exc:
            if attempt >= max_attempts or (stop is not None and stop.is_set()):
                raise
            delay = retry_delay(exc, attempt)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            if stop is not None:
                if stop.wait(delay):
                    raise
            else:
                sleep(delay)


def save_result(
    prepared: PreparedJob,
    result: GenerationResult,
    outdir: Path,
    *,
    attempts: int = DOWNLOAD_ATTEMPTS,
    sleep: Callable[[float], Any] = time.sleep,
) -> Path:
    """Write the result to ``outdir/<job>.<ext>`` at once: the bytes, or a download of its URL.

    A cut-off download is tried again (the link is still valid for minutes); an
    expired link is not.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    if result.data is not None:
        return write_result_bytes(result.data, outdir, prepared.job_id)
    if not result.url:
        raise TransientError(
            "the backend returned neither an image nor a link", job_id=prepared.job_id
        )
    for attempt in range(1, attempts + 1):
        try:
            return download_result(result.url, outdir, prepared.job_id)
        except RetryableError as exc:
            exc.job_id = exc.job_id or prepared.job_id
            if attempt >= attempts:
                raise
            sleep(retry_delay(exc, attempt))
        except GenerationError as exc:
            exc.job_id = exc.job_id or prepared.job_id
            raise
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- finish


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _compare(
    prepared: PreparedJob, output_path: Path, outdir: Path
) -> tuple[dict[str, Any] | None, Path | None]:
    """Compare the output with its sources and draw the sheet; (report dict, sheet path).

    The subject is the job's ``subject_box`` when given, else detected on the target;
    the placement is the job's ``placement`` variable (recipe default or ``--var``)."""
    from . import compare as compare_mod
    from .images import load_image

    if not prepared.sources:
        return None, None  # text to image: nothing to measure against
    recipe = prepared.spec.recipe
    names = [s["name"] for s in prepared.sources]
    budget = (1024, 1024)
    loaded = {
        name: load_image(src, draft_size=_draft(s, budget)).image
        for name, src, s in zip(names, prepared.spec.sources, prepared.sources, strict=True)
    }
    target_name = _target_name(names)
    assert target_name is not None
    if prepared.composite is None:
        # Separate references: no canvas layout, so the output must be the target's frame.
        from PIL import Image

        with Image.open(output_path) as im:
            out_size = im.size
        info = prepared.sources[names.index(target_name)]
        compare_mod.require_target_frame(out_size, (int(info["width"]), int(info["height"])))
    checks = dict(recipe.checks) if recipe else {}
    context = prepared.request.context
    variables = context.get("variables") or {}
    placement = variables.get("placement")
    sheet_path = outdir / f"{prepared.job_id}.sheet.png"
    report = compare_mod.compare_files(
        output_path,
        loaded[target_name],
        pattern=loaded.get("pattern"),
        style=loaded.get("style"),
        sources=loaded,
        source_order=names,
        layout=prepared.composite,
        target_index=names.index(target_name),
        checks=checks or None,
        subject_box=context.get("subject_box"),
        placement=None if placement is None else str(placement),
        sheet=sheet_path,
        canvas=None if prepared.composite is None else prepared.composite.image,
    )
    data = report.to_dict()
    if not checks:
        data["passed"] = None
    return data, report.sheet_path


def _draft(info: Mapping[str, Any], budget: tuple[int, int]) -> tuple[int, int] | None:
    """A decode size at most ``budget`` with the source's aspect (sources can be 24 MP)."""
    w, h = int(info["width"]), int(info["height"])
    s = min(budget[0] / w, budget[1] / h, 1.0)
    if s >= 1.0:
        return None
    return max(1, round(w * s)), max(1, round(h * s))


def finish_job(
    prepared: PreparedJob,
    output_path: Path,
    outdir: Path,
    *,
    backend_name: str | None = None,
    compare: bool = True,
    timings: Mapping[str, float] | None = None,
    task_id: str | None = None,
    billed: Mapping[str, Any] | None = None,
) -> JobOutcome:
    """Write the canvas (or the separate references), compare the output (and draw its
    sheet), then the sidecar ``<job>.json``.

    ``billed`` is the provider's word on the price (``GenerationResult.extra``:
    ``cost_credits``, ``input_mp``, ``output_mp``), when its reply carried one.
    """
    t0 = time.perf_counter()
    outdir.mkdir(parents=True, exist_ok=True)
    canvas_path: Path | None = None
    reference_paths: list[Path] = []
    req = prepared.request
    if prepared.canvas_bytes is not None:
        # Exactly the bytes sent. Not fsynced: the canvas is derived data
        # (the sidecar records its sources and layout).
        ext = canvas_extension(req.input_mime)
        canvas_path = write_bytes_atomic(
            outdir / f"{prepared.job_id}.canvas.{ext}", prepared.canvas_bytes, durable=False
        )
    elif prepared.references == "separate" and req.input_image is not None:
        images = [(req.input_image, req.input_mime), *req.more_images]
        for i, (data, mime) in enumerate(images, start=1):
            path = outdir / f"{prepared.job_id}.ref{i}.{canvas_extension(mime)}"
            reference_paths.append(write_bytes_atomic(path, data, durable=False))
    metrics: dict[str, Any] | None = None
    sheet_path: Path | None = None
    if compare:
        try:
            metrics, sheet_path = _compare(prepared, output_path, outdir)
        except Exception as exc:  # noqa: BLE001
            # The result is paid for and on disk: a failure to measure it must not
            # cost the sidecar. Say why it was not measured instead.
            reason = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            metrics = {"error": f"compare failed: {reason}", "passed": None, "checks": {}}
    all_timings = {**prepared.timings, **(timings or {})}
    all_timings["finish_s"] = time.perf_counter() - t0
    sidecar = build_sidecar(
        prepared,
        output_path=output_path,
        canvas_path=canvas_path,
        sheet_path=sheet_path,
        metrics=metrics,
        backend_name=backend_name or prepared.backend_name,
        task_id=task_id,
        timings=all_timings,
        billed=billed,
        reference_paths=reference_paths,
    )
    sidecar_path = write_sidecar(outdir, prepared.job_id, sidecar)
    passed = None if metrics is None else metrics.get("passed")
    return JobOutcome(
        job_id=prepared.job_id,
        output_path=output_path,
        canvas_path=canvas_path,
        sidecar_path=sidecar_path,
        sheet_path=sheet_path,
        sidecar=sidecar,
        metrics=metrics,
        checks_passed=passed,
        cost_usd=float(sidecar["cost_usd"]),
        reference_paths=reference_paths,
    )


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
        {**_public_ref(r), "path": paths[i] if i < len(paths) else None}
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
        "task_id": _public_task_id(task_id),
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


def _public_task_id(task_id: str | None) -> str | None:
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


# --------------------------------------------------------------------------- one job


def run_job(
    spec: JobSpec,
    backend: Backend,
    outdir: Path,
    *,
    compare: bool = True,
    max_attempts: int = 4,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> JobOutcome:
    """Run one job end to end and write ``<job>.<ext>``, ``<job>.canvas.<ext>`` (or
    ``<job>.ref1.<ext>``, ... for separate references) and ``<job>.json``."""
    prepared = prepare_job(spec, backend_name=backend.name)
    return complete_job(
        prepared, backend, outdir, compare=compare, max_attempts=max_attempts, on_retry=on_retry
    )


def complete_job(
    prepared: PreparedJob,
    backend: Backend,
    outdir: Path,
    *,
    compare: bool = True,
    max_attempts: int = 4,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
    candidates: int = 1,
    stop_on_pass: bool = False,
) -> JobOutcome:
    """Generate, download and finish a prepared job (everything after :func:`prepare_job`).

    ``candidates`` > 1 draws that many (seeds seed, seed+1...) and keeps the best by the
    checks; ``stop_on_pass`` stops once one passes (see :mod:`fluxcompose.candidates`).
    """
    if candidates > 1:
        from .candidates import CandidateHooks, run_candidates

        got = run_candidates(
            prepared,
            backend,
            outdir,
            n=candidates,
            stop_on_pass=stop_on_pass,
            compare=compare,
            max_attempts=max_attempts,
            hooks=CandidateHooks(on_retry=on_retry),
        )
        assert got is not None  # no journal, no budget, no stop: every candidate is drawn
        return got[0]
    t0 = time.perf_counter()
    task: dict[str, str] = {}
    result = generate_with_retries(
        backend,
        prepared,
        max_attempts=max_attempts,
        on_submitted=lambda tid: task.__setitem__("id", tid),
        on_retry=on_retry,
    )
    t1 = time.perf_counter()
    output_path = save_result(prepared, result, outdir)
    t2 = time.perf_counter()
    return finish_job(
        prepared,
        output_path,
        outdir,
        backend_name=backend.name,
        compare=compare,
        timings={"generate_s": t1 - t0, "download_s": t2 - t1},
        task_id=result.task_id or task.get("id"),
        billed=result.extra,
    )
