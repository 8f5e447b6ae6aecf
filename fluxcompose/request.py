"""The request: what a job asks for, resolved once, before any image is read.

:class:`JobSpec` (with :class:`RequestOptions` and :class:`ComposeOptions`) is what a caller
gives; :func:`resolve_job` checks it and fills every option from the spec, else the recipe,
else the defaults, into :class:`JobSettings`. The output's size (:func:`output_size`), the
budget of separate references and the price of a job (:func:`typical_price`) follow from
the settings. Reads no file: composing is :mod:`fluxcompose.prepare`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import geometry, pricing
from .compose import Composite
from .errors import ConfigError, InputError, RatioError
from .images import DEFAULT_CANVAS_FORMAT
from .locate import Box, parse_box
from .models import GUIDANCE_RANGE, MAX_TOTAL_PIXELS, STEPS_RANGE, model_spec
from .recipes import REFERENCE_MODES, Recipe

__all__ = [
    "ComposeOptions",
    "ComposeSettings",
    "JobSettings",
    "JobSpec",
    "OutputSize",
    "RequestOptions",
    "job_price",
    "output_size",
    "reference_budget",
    "resolve_aspect_ratio",
    "resolve_job",
    "resolve_model",
    "takes_size",
    "target_name",
    "typical_price",
]

DEFAULT_MODEL = "flux-kontext-pro"
DEFAULT_SAFETY = 2
DEFAULT_FORMAT = "png"
OUTPUT_FORMATS = ("png", "jpeg", "webp")  # which one a model writes: validate_request
DEFAULT_REFERENCE_MEGAPIXELS = 1.0  # each separate reference at most this, in 1,048,576 px
MEGA = geometry.MEGAPIXEL


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
        rule = f"match:{target_name(list(names))}"

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


def target_name(names: list[str]) -> str | None:
    """The source that is edited: the one named ``target``, else the last (None: no sources)."""
    if not names:
        return None
    return "target" if "target" in names else names[-1]
