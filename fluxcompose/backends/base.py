"""The backend protocol: one request in, one result out.

A backend turns a :class:`GenerationRequest` into a :class:`GenerationResult`
(image bytes, or a URL that the pipeline downloads at once). It translates its
vendor's errors into the tree in :mod:`fluxcompose.errors` at the boundary, so
nothing above a backend ever sees an ``openai`` or HTTP exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, Protocol, TypedDict, Unpack, runtime_checkable

from ..errors import ConfigError
from ..models import (
    GUIDANCE_RANGE,
    MAX_TOTAL_PIXELS,
    MEGAPIXEL,
    MODEL_NAMES,
    STEPS_RANGE,
    model_spec,
    size_problem,
)

__all__ = [
    "MODELS",
    "Backend",
    "GenerationRequest",
    "GenerationResult",
    "OnSubmitted",
    "TaskHooks",
    "model_fields",
    "size_fields",
    "tuning_fields",
    "validate_model",
    "validate_request",
]

MODELS: tuple[str, ...] = MODEL_NAMES
"""The models every backend takes (the table in :mod:`fluxcompose.models`);
:func:`validate_model` is the one check against it."""


def validate_model(model: str) -> str:
    """``model`` if it is one of MODELS, else ConfigError (exit 2) naming the choices."""
    model_spec(model)
    return model


OutputFormat = Literal["png", "jpeg", "webp"]


@dataclass(frozen=True)
class GenerationRequest:
    """What is sent to a backend.

    ``input_image`` is the canvas (stitched) or the first reference (separate) as PNG or
    JPEG bytes (``None`` for text-to-image); ``input_mime`` says which. ``more_images``
    are references 2..N in order, each ``(bytes, mime)``: ``input_image_2`` ... on the
    wire (DESIGN.md section 11). ``aspect_ratio`` is ``W:H`` inside 3:7..7:3 (Kontext's
    size field); ``width``/``height`` are the output size in pixels for models that take
    a size instead (FLUX.2: multiples of 16, 64 to 4 MP). ``steps`` (1..50) and
    ``guidance`` (1.5..10) are flux-2-flex's. ``seed`` is ``None`` to let the provider
    choose. ``context`` carries what the local backend needs to imitate the recipe
    (recipe name, variables, the canvas layout or the references' names); hosted
    backends ignore it.
    """

    prompt: str
    model: str = "flux-kontext-pro"
    input_image: bytes | None = None
    input_mime: str = "image/png"
    aspect_ratio: str = "1:1"
    seed: int | None = None
    safety_tolerance: int = 2
    output_format: OutputFormat = "png"
    prompt_upsampling: bool = False
    context: dict[str, Any] = field(default_factory=dict, compare=False)
    more_images: tuple[tuple[bytes, str], ...] = ()
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None

    def describe(self) -> dict[str, Any]:
        """The request as JSON-safe data with the images elided (for --dry-run and sidecars).

        Fields added for FLUX.2 (``more_images``, ``width``, ``height``, ``steps``,
        ``guidance``) appear only when set, so a Kontext request reads (and hashes into a
        job id) as it always did.
        """
        # The fields as they are (all plain values but the two popped below): not
        # ``asdict``, which would deep-copy ``context`` (the layout) only to drop it.
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "context"}
        img = data.pop("input_image")
        data["input_image"] = None if img is None else f"<{self.input_mime}, {len(img)} bytes>"
        more = data.pop("more_images")
        if more:
            data["more_images"] = [f"<{mime}, {len(b)} bytes>" for b, mime in self.more_images]
        for key in ("width", "height", "steps", "guidance"):
            if data[key] is None:
                del data[key]
        return data


@dataclass
class GenerationResult:
    """A finished generation: exactly one of ``data`` (bytes) or ``url`` is set.

    ``task_id`` is the provider's id for the task, when it has one.
    """

    data: bytes | None = None
    url: str | None = None
    task_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


OnSubmitted = Callable[[str], None]
"""Called with the provider's task id as soon as a task is accepted, before any polling,
so a batch journal can commit it and a resumed run can poll instead of paying again."""


class TaskHooks(TypedDict, total=False):
    """How a caller follows a provider's task through :meth:`Backend.generate`.

    - ``on_submitted``: called with the task id as soon as the provider accepts the task;
    - ``resume_task_id``: poll this task instead of submitting (and paying for) a new one.

    Both are optional and only a resumable backend (BFL) uses them: a backend that answers
    in one request ignores them. One definition, so every backend takes the same keywords.
    """

    on_submitted: OnSubmitted | None
    resume_task_id: str | None


@runtime_checkable
class Backend(Protocol):
    """What every backend provides.

    ``name`` is the registry key (``local``, ``openai``, ``bfl``).
    ``resumable`` is True when a submitted task can be picked up again by id
    (``generate(..., resume_task_id=...)``) without submitting it a second time.
    ``max_concurrency(model)`` is the provider's cap on tasks in flight.
    """

    name: ClassVar[str]
    resumable: ClassVar[bool]

    def max_concurrency(self, model: str) -> int: ...

    def generate(
        self, request: GenerationRequest, **task: Unpack[TaskHooks]
    ) -> GenerationResult: ...


def _pixels(data: bytes, which: str) -> int:
    """Width x height of an encoded image (its header only), or ConfigError."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ConfigError(f"{which} is not a readable image") from exc
    return int(width) * int(height)


def size_fields(request: GenerationRequest) -> dict[str, Any]:
    """The output size as the request's model takes it, in wire order: ``aspect_ratio``
    (Kontext) or ``width`` and ``height`` in pixels (FLUX.2)."""
    if model_spec(request.model).size_fields == "aspect_ratio":
        return {"aspect_ratio": request.aspect_ratio}
    assert request.width is not None and request.height is not None
    return {"width": int(request.width), "height": int(request.height)}


def model_fields(request: GenerationRequest, order: tuple[str, ...]) -> dict[str, Any]:
    """The model's own fields of a request, in the wire's ``order``: the size
    (:func:`size_fields`), ``seed`` when set, ``steps``/``guidance`` (:func:`tuning_fields`),
    ``safety_tolerance``, ``output_format``, and ``prompt_upsampling`` for a model that
    takes it (the model table). Which fields go, and as what type, is decided here once;
    each backend states only its order. A field missing from ``order`` is a bug: KeyError.
    """
    fields = size_fields(request)
    if request.seed is not None:
        fields["seed"] = int(request.seed)
    fields.update(tuning_fields(request))
    fields["safety_tolerance"] = int(request.safety_tolerance)
    fields["output_format"] = request.output_format
    if model_spec(request.model).prompt_upsampling:
        fields["prompt_upsampling"] = bool(request.prompt_upsampling)
    rank = {name: i for i, name in enumerate(order)}
    return dict(sorted(fields.items(), key=lambda kv: rank[kv[0]]))


def tuning_fields(request: GenerationRequest) -> dict[str, Any]:
    """``steps`` and ``guidance``, those that are set, for a model that takes them
    (flux-2-flex); empty for any other model."""
    fields: dict[str, Any] = {}
    if model_spec(request.model).tunable:
        if request.steps is not None:
            fields["steps"] = int(request.steps)
        if request.guidance is not None:
            fields["guidance"] = float(request.guidance)
    return fields


def validate_request(request: GenerationRequest) -> None:
    """Raise ConfigError (exit 2, nothing sent) for anything the model's API would refuse.

    Checked against the model's row in :mod:`fluxcompose.models`: the model itself; the
    number of input images (``input_image`` plus ``more_images``; references 2..N need a
    first one); ``width``/``height`` required for FLUX.2 (multiples of 16, at least 64,
    at most 4 MP) and refused for Kontext (it takes ``aspect_ratio``);
    ``safety_tolerance`` within the model's range; ``output_format`` one the model
    writes; ``steps`` (1..50) and ``guidance`` (1.5..10) only for a model that takes them
    (flux-2-flex), likewise ``prompt_upsampling=True``; and for FLUX.2 the input images
    plus the output within 9 MP (units of 1,048,576 pixels; the images' headers are read
    for their sizes).
    """
    spec = model_spec(request.model)
    name = spec.name
    count = (0 if request.input_image is None else 1) + len(request.more_images)
    if request.more_images and request.input_image is None:
        raise ConfigError("references 2..N were given without a first input image")
    if count > spec.max_references:
        raise ConfigError(f"{name} takes at most {spec.max_references} input images, got {count}")
    has_size = request.width is not None or request.height is not None
    if spec.size_fields == "width_height":
        if request.width is None or request.height is None:
            raise ConfigError(f"{name} needs the output width and height")
        problem = size_problem(request.width, request.height)
        if problem is not None:
            raise ConfigError(f"{name}: {problem}")
    elif has_size:
        raise ConfigError(
            f"{name} takes an aspect ratio, not a width and height; "
            "leave the size to --aspect-ratio"
        )
    low, high = spec.safety_range
    safety = request.safety_tolerance
    if isinstance(safety, bool) or not isinstance(safety, int) or not low <= safety <= high:
        raise ConfigError(f"{name}: safety_tolerance must be {low}..{high}, got {safety!r}")
    if request.output_format not in spec.output_formats:
        raise ConfigError(
            f"{name} writes {', '.join(spec.output_formats)}, not {request.output_format!r}"
        )
    _check_tuning(request, spec.tunable, name)
    if request.prompt_upsampling and not spec.prompt_upsampling:
        raise ConfigError(f"{name} does not take prompt_upsampling")
    if spec.is_flux2:
        assert request.width is not None and request.height is not None
        total = request.width * request.height
        images = [] if request.input_image is None else [request.input_image]
        images += [data for data, _mime in request.more_images]
        for i, data in enumerate(images, start=1):
            total += _pixels(data, f"input image {i}")
        if total > MAX_TOTAL_PIXELS:
            raise ConfigError(
                f"{name}: the input images plus the output are {total / MEGAPIXEL:.2f} MP, "
                f"over the {MAX_TOTAL_PIXELS // MEGAPIXEL} MP maximum; "
                "shrink the references (--reference-megapixels) or the output (--megapixels)"
            )


def _check_tuning(request: GenerationRequest, tunable: bool, name: str) -> None:
    """``steps``/``guidance``: only for a model that takes them, and within range."""
    for label, value, (low, high) in (
        ("steps", request.steps, STEPS_RANGE),
        ("guidance", request.guidance, GUIDANCE_RANGE),
    ):
        if value is None:
            continue
        if not tunable:
            raise ConfigError(f"{name} does not take {label} (only flux-2-flex does)")
        ok_type = not isinstance(value, bool) and isinstance(value, int | float)
        if label == "steps":
            ok_type = ok_type and isinstance(value, int)
        if not ok_type or not low <= value <= high:
            raise ConfigError(f"{name}: {label} must be {low:g}..{high:g}, got {value!r}")
