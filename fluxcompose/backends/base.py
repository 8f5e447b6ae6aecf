"""The backend protocol: one request in, one result out.

A backend turns a :class:`GenerationRequest` into a :class:`GenerationResult`
(image bytes, or a URL that the pipeline downloads at once). It translates its
vendor's errors into the tree in :mod:`fluxcompose.errors` at the boundary, so
nothing above a backend ever sees an ``openai`` or HTTP exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from ..errors import ConfigError

__all__ = [
    "MODELS",
    "Backend",
    "GenerationRequest",
    "GenerationResult",
    "OnSubmitted",
    "validate_model",
]

MODELS: tuple[str, ...] = ("flux-kontext-pro", "flux-kontext-max")
"""The models every backend takes; :func:`validate_model` is the one check against it."""


def validate_model(model: str) -> str:
    """``model`` if it is one of MODELS, else ConfigError (exit 2) naming the choices."""
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    return model

OutputFormat = Literal["png", "jpeg"]


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
        data = asdict(self)
        data.pop("context", None)
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
        self,
        request: GenerationRequest,
        *,
        on_submitted: OnSubmitted | None = None,
        resume_task_id: str | None = None,
    ) -> GenerationResult: ...
