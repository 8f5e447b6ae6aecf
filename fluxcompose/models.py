"""The models fluxcompose can send to, in one table (DESIGN.md section 11).

Each :class:`ModelSpec` says what the model's API takes: its BFL endpoint, how many
reference images (``input_image``, ``input_image_2`` ...), whether the output size
is an ``aspect_ratio`` (FLUX.1 Kontext) or ``width``/``height`` (FLUX.2), the
``safety_tolerance`` range, the output formats, whether ``steps``/``guidance`` and
``prompt_upsampling`` are accepted, the default references mode and BFL's cap on
tasks in flight. Field names and limits follow BFL's OpenAPI spec
(``FluxKontextProInputs``, ``Flux2Inputs``, ``Flux2FlexInputs``).

Megapixels are units of 1024 x 1024 = 1,048,576 pixels throughout (BFL reports a
1920x1080 image as 1.98 MP), so FLUX.2's 4 MP output limit is 4,194,304 pixels.
Pure data and lookups: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError

__all__ = [
    "GUIDANCE_RANGE",
    "MAX_OUTPUT_PIXELS",
    "MAX_TOTAL_PIXELS",
    "MEGAPIXEL",
    "MIN_SIDE",
    "MODEL_NAMES",
    "MODEL_SPECS",
    "SIZE_MULTIPLE",
    "STEPS_RANGE",
    "ModelSpec",
    "concurrency_cap",
    "model_spec",
    "size_problem",
]

Family = Literal["kontext", "flux2"]
SizeFields = Literal["aspect_ratio", "width_height"]
ReferencesMode = Literal["stitched", "separate"]

MEGAPIXEL = 1024 * 1024
"""Pixels in one megapixel (the unit BFL bills and limits by)."""
SIZE_MULTIPLE = 16
"""FLUX.2 output sides are multiples of this many pixels."""
MIN_SIDE = 64
"""FLUX.2 output sides are at least this many pixels."""
MAX_OUTPUT_PIXELS = 4 * MEGAPIXEL
"""FLUX.2 outputs are at most 4 MP."""
MAX_TOTAL_PIXELS = 9 * MEGAPIXEL
"""FLUX.2: the input images plus the output are at most 9 MP."""
STEPS_RANGE = (1, 50)
"""flux-2-flex ``steps``, inclusive."""
GUIDANCE_RANGE = (1.5, 10.0)
"""flux-2-flex ``guidance``, inclusive."""


@dataclass(frozen=True)
class ModelSpec:
    """What one model's API takes.

    ``max_references``: input images at most (``input_image`` plus ``input_image_2..N``);
    ``safety_range``: inclusive ``safety_tolerance`` bounds; ``tunable``: takes ``steps``
    and ``guidance``; ``prompt_upsampling``: takes that flag; ``bfl_concurrency``: BFL's
    cap on active tasks for this model.
    """

    name: str
    family: Family
    bfl_endpoint: str
    max_references: int
    size_fields: SizeFields
    safety_range: tuple[int, int]
    output_formats: tuple[str, ...]
    default_references: ReferencesMode
    tunable: bool
    prompt_upsampling: bool
    bfl_concurrency: int

    @property
    def is_flux2(self) -> bool:
        return self.family == "flux2"


def _kontext(name: str, concurrency: int) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="kontext",
        bfl_endpoint=f"/v1/{name}",
        max_references=4,  # input_image_2..4 are BFL's "experimental multiref"
        size_fields="aspect_ratio",
        safety_range=(0, 6),
        output_formats=("png", "jpeg"),
        default_references="stitched",
        tunable=False,
        prompt_upsampling=True,
        bfl_concurrency=concurrency,
    )


def _flux2(name: str, *, flex: bool) -> ModelSpec:
    return ModelSpec(
        name=name,
        family="flux2",
        bfl_endpoint=f"/v1/{name}",
        max_references=8,
        size_fields="width_height",
        safety_range=(0, 5),
        output_formats=("jpeg", "png", "webp"),
        default_references="separate",
        tunable=flex,
        prompt_upsampling=flex,  # Flux2Inputs (pro, max) has no prompt_upsampling
        bfl_concurrency=24,
    )


MODEL_SPECS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _kontext("flux-kontext-pro", 24),
        _kontext("flux-kontext-max", 6),
        _flux2("flux-2-pro", flex=False),
        _flux2("flux-2-max", flex=False),
        _flux2("flux-2-flex", flex=True),
    )
}
"""Every model, by name, in the order shown to users."""

MODEL_NAMES: tuple[str, ...] = tuple(MODEL_SPECS)


def model_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; ConfigError (exit 2) naming the choices when unknown."""
    spec = MODEL_SPECS.get(name)
    if spec is None:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return spec


def concurrency_cap(model: str) -> int:
    """BFL's cap on tasks in flight for ``model`` (the model table): 6 for flux-kontext-max,
    24 for any other model, known or not."""
    spec = MODEL_SPECS.get(model)
    return 24 if spec is None else spec.bfl_concurrency


def size_problem(width: object, height: object) -> str | None:
    """Why ``width`` x ``height`` (pixels) is not a FLUX.2 output size, or None when it is.

    Both sides whole numbers, multiples of 16, at least 64, and the area at most 4 MP.
    """
    for label, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{label} must be a whole number of pixels, got {value!r}"
        if value < MIN_SIDE:
            return f"{label} {value} is below the minimum of {MIN_SIDE} pixels"
        if value % SIZE_MULTIPLE:
            return f"{label} {value} is not a multiple of {SIZE_MULTIPLE}"
    assert isinstance(width, int) and isinstance(height, int)
    if width * height > MAX_OUTPUT_PIXELS:
        return (
            f"{width}x{height} is {width * height / MEGAPIXEL:.2f} MP, over the "
            f"{MAX_OUTPUT_PIXELS // MEGAPIXEL} MP maximum"
        )
    return None
