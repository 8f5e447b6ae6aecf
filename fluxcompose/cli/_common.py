"""Option types and small helpers shared by the commands.

Over 500 lines because every shared flag is declared here once, with its help text, in
the bundle its commands take (backend, request, prompt, compose, batch run, job).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, TypeVar, cast

import click

from .. import geometry
from ..errors import InputError, RatioError

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..batch import BatchConfig
    from ..recipes import Recipe
    from ..request import ComposeOptions, RequestOptions


class RatioType(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """A ``W:H`` ratio inside 3:7..7:3, parsed at the edge into a :class:`geometry.Ratio`."""

    name = "RATIO"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, geometry.Ratio):
            return value
        try:
            return geometry.parse_ratio(str(value))
        except RatioError as exc:
            raise InputError(str(exc)) from None


class SubjectBoxType(click.ParamType):  # type: ignore[type-arg]
    """``x0,y0,x1,y1`` normalised on the target: the chest box, given by hand."""

    name = "x0,y0,x1,y1"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..locate import parse_box

        if isinstance(value, tuple):
            return value
        try:
            return parse_box(str(value))
        except InputError as exc:
            raise InputError(f"--subject-box: {exc}") from None


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def notice(message: str) -> None:
    """A line for the user on stderr (stdout stays clean for --json)."""
    click.echo(message, err=True)


def is_tty_stderr() -> bool:
    return sys.stderr.isatty()


# --------------------------------------------------------------------------- shared option bundles
#
# Each bundle adds its options to a command and hands the command one object built from
# them (``backend``, ``request``, ``job``, ``compose``), so run and batch share the flags
# without repeating them in their signatures.

_F = TypeVar("_F", bound=Callable[..., Any])
_Option = Callable[[Callable[..., Any]], Callable[..., Any]]


def _bundle(
    target: str, names: tuple[str, ...], options: list[_Option], build: Callable[..., object]
) -> Callable[[_F], _F]:
    """A decorator adding ``options`` whose values (``names``) become one argument ``target``."""

    def decorate(f: _F) -> _F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            kwargs[target] = build(**values)
            return f(*args, **kwargs)

        command: Callable[..., Any] = wrapper
        for opt in reversed(options):
            command = opt(command)
        return cast(_F, command)

    return decorate


@dataclass(frozen=True)
class BackendChoice:
    """--backend, --api-key, --base-url and --transport as given; resolved on demand."""

    name: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    transport: str = "generations"

    def resolved_name(self) -> str:
        """The backend that would be used (flag, else environment), without building it."""
        from ..backends import resolve_backend_name

        return resolve_backend_name(self.name)

    def build(self) -> Backend:
        """The backend object (a hosted one needs its key now)."""
        from ..backends import make_backend

        return make_backend(
            self.resolved_name(),
            api_key=self.api_key,
            base_url=self.base_url,
            transport=self.transport,
        )


@dataclass(frozen=True)
class PromptOptions:
    """--prompt, --var, --subject-box and --no-compare: what to ask for, and where and
    whether to measure it."""

    prompt: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    compare: bool = True
    subject_box: tuple[float, float, float, float] | None = None


recipe_option = click.option(
    "--recipe",
    "-r",
    default=None,
    metavar="NAME|PATH",
    help="A built-in recipe (see `fluxcompose recipes`) or a recipe file.",
)


def json_option(help_text: str = "Print JSON.") -> _Option:
    """``--json`` -> ``as_json: bool``: what the command prints, as JSON on stdout (notices
    stay on stderr). One definition, so every command spells the flag the same way."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def subject_box_option(help_text: str) -> _Option:
    """``--subject-box x0,y0,x1,y1`` -> ``subject_box: Box | None``: the chest box given by
    hand, normalised 0..1 on the target, parsed and checked once (:class:`SubjectBoxType`)."""
    return click.option("--subject-box", type=SubjectBoxType(), default=None, help=help_text)


def outdir_option(help_text: str) -> _Option:
    """A required ``-o/--outdir`` folder (batch and ab: where the resumable work lives)."""
    return click.option("-o", "--outdir", required=True, type=click.Path(path_type=Path),
                        help=help_text)  # fmt: skip


class JobOptions(NamedTuple):
    """Everything run, batch and ab ask of one job: backend, request, prompt, canvas and
    best-of-N (``backend, request, job, compose, candidates, stop_on_pass = opts``)."""

    backend: BackendChoice
    request: RequestOptions
    job: PromptOptions
    compose: ComposeOptions
    candidates: int = 1
    stop_on_pass: bool = False


def job_options(f: _F) -> _F:
    """The option bundles of one job (:class:`JobOptions`) -> one argument ``opts``."""
    from ._candidate_options import candidate_options

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opts = JobOptions(*(kwargs.pop(name) for name in JobOptions._fields))
        return f(*args, opts=opts, **kwargs)

    out: Any = wrapper
    for add in (candidate_options, compose_options, prompt_options, request_options):
        out = add(out)
    return cast(_F, backend_options(out))


def backend_options(f: _F) -> _F:
    """--backend, --api-key, --base-url, --transport -> ``backend: BackendChoice``."""
    from ..backends import BACKENDS, TRANSPORTS

    options: list[_Option] = [
        click.option(
            "--backend",
            type=click.Choice(list(BACKENDS)),
            default=None,
            help="local (offline preview), openai (OpenAI-compatible gateway, e.g. APIYI) "
            "or bfl (Black Forest Labs). Default: FLUXCOMPOSE_BACKEND, else by which key is set.",
        ),
        click.option(
            "--api-key",
            default=None,
            metavar="KEY",
            help="Key for the hosted backend (default: FLUXCOMPOSE_API_KEY or BFL_API_KEY).",
        ),
        click.option(
            "--base-url",
            default=None,
            metavar="URL",
            help="API base URL (default: FLUXCOMPOSE_BASE_URL / BFL_BASE_URL, else the vendor's).",
        ),
        click.option(
            "--transport",
            type=click.Choice(list(TRANSPORTS)),
            default="generations",
            show_default=True,
            help="openai backend: JSON generations or multipart edits.",
        ),
    ]

    def build(
        backend: str | None, api_key: str | None, base_url: str | None, transport: str
    ) -> BackendChoice:
        return BackendChoice(backend, api_key, base_url, transport)

    names = ("backend", "api_key", "base_url", "transport")
    return _bundle("backend", names, options, build)(f)


def request_options(f: _F) -> _F:
    """The request fields shared by run and batch -> ``request: RequestOptions``.

    Unset means the recipe's default. There is no separate output-size flag: the compose
    bundle's ``--megapixels`` is the canvas budget and the FLUX.2 output budget alike.
    """
    from ..backends.base import MODELS
    from ..recipes import REFERENCE_MODES

    options: list[_Option] = [
        click.option(
            "--model",
            type=click.Choice(list(MODELS)),
            default=None,
            help="Default: the recipe's, else flux-kontext-pro. FLUX.2 models take "
            "width/height from the aspect rule and --megapixels.",
        ),
        click.option(
            "--seed",
            type=click.IntRange(min=0),
            default=None,
            help="Seed for reproducible output.",
        ),
        click.option(
            "--aspect-ratio",
            default=None,
            metavar="W:H|canvas|match:NAME",
            help="Output aspect ratio (3:7 to 7:3). Default: the recipe's rule.",
        ),
        click.option(
            "--safety-tolerance",
            type=click.IntRange(0, 6),
            default=None,
            help="0 (strict) to 6 (permissive). Default 2.",
        ),
        click.option(
            "--output-format",
            type=click.Choice(["png", "jpeg", "webp"]),
            default=None,
            help="png or jpeg; FLUX.2 also writes webp. Default: the recipe's, else png.",
        ),
        click.option(
            "--prompt-upsampling/--no-prompt-upsampling",
            default=None,
            help="Let the provider expand the prompt.",
        ),
        click.option(
            "--canvas-format",
            type=click.Choice(["jpeg", "png"]),
            default=None,
            help="How the canvas (or each reference) is sent and saved: JPEG q95 4:4:4 "
            "(default) or lossless PNG.",
        ),
        click.option(
            "--references",
            type=click.Choice(list(REFERENCE_MODES)),
            default=None,
            help="stitched: one canvas as input_image; separate: each image its own "
            "reference, in order. Default: the recipe's, else the model's (stitched for "
            "Kontext, separate for FLUX.2).",
        ),
        click.option(
            "--reference-megapixels",
            type=click.FloatRange(min=0, min_open=True, max=4),
            default=None,
            help="separate: each reference shrunk to at most this (default 1.0; less when "
            "inputs plus output would pass 9 MP).",
        ),
        click.option(
            "--steps",
            type=click.IntRange(1, 50),
            default=None,
            help="flux-2-flex: denoising steps, 1 to 50.",
        ),
        click.option(
            "--guidance",
            type=click.FloatRange(1.5, 10),
            default=None,
            help="flux-2-flex: guidance scale, 1.5 to 10.",
        ),
    ]
    from ..recipes import REQUEST_KEYS  # a recipe's [request] keys: the same names

    names = (*REQUEST_KEYS, "canvas_format")
    return _bundle("request", names, options, build_request_options)(f)


def prompt_options(f: _F) -> _F:
    """--prompt, --var, --no-compare -> ``job: PromptOptions``."""
    options: list[_Option] = [
        click.option(
            "--prompt",
            default=None,
            metavar="TEXT",
            help="Replace the recipe's prompt template ({variables} still work).",
        ),
        click.option(
            "--var",
            "variables",
            multiple=True,
            metavar="KEY=VALUE",
            help="Set a recipe variable; repeatable.",
        ),
        subject_box_option(
            "The chest box on the target, x0,y0,x1,y1 normalised 0..1, instead of "
            "detecting it (a subject_box column in PAIRS does this per row)."
        ),
        click.option(
            "--no-compare", is_flag=True, help="Skip comparing the output with its sources."
        ),
    ]

    def build(
        prompt: str | None,
        variables: tuple[str, ...],
        subject_box: tuple[float, float, float, float] | None,
        no_compare: bool,
    ) -> PromptOptions:
        return PromptOptions(prompt, parse_variables(variables), not no_compare, subject_box)

    names = ("prompt", "variables", "subject_box", "no_compare")
    return _bundle("job", names, options, build)(f)


def compose_options(f: _F) -> _F:
    """The canvas options of run and batch -> ``compose: ComposeOptions``.

    Unset means the recipe's default; ``fluxcompose compose`` documents each one.
    """
    options: list[_Option] = [
        click.option(
            "--layout",
            type=click.Choice(list(geometry.LAYOUTS)),
            default=None,
            help="Canvas layout (default: the recipe's).",
        ),
        click.option(
            "--gutter", type=click.IntRange(min=0), default=None, help="Pixels between cells."
        ),
        click.option(
            "--gutter-color", default=None, help="Colour of the gutters (default: the background)."
        ),
        click.option("--background", default=None, help="Padding and alpha background."),
        click.option(
            "--labels/--no-labels",
            default=None,
            help='Label each cell "1", "2", ... in its corner.',
        ),
        click.option(
            "--outline/--no-outline", default=None, help="Draw a thin border around each cell."
        ),
        click.option(
            "--megapixels",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Canvas budget, and the FLUX.2 output's size (default 1.0; FLUX.2 "
            "output at most 4).",
        ),
        click.option(
            "--upscale/--no-upscale",
            default=None,
            help="Scale small sources up to the budget (default) or keep them native.",
        ),
    ]
    from ..recipes import COMPOSE_KEYS  # a recipe's [compose] keys: the same names

    def build(**values: Any) -> ComposeOptions:
        from ..request import ComposeOptions

        return ComposeOptions(**values)

    return _bundle("compose", COMPOSE_KEYS, options, build)(f)


class BatchRunOptions(TypedDict):
    """--concurrency, --budget, --max-attempts and --retry-failed: how batch and ab run.

    Keyed by :class:`~fluxcompose.batch.BatchConfig`'s own field names, so they pass on
    as ``**run`` and mypy checks every key against the config."""

    concurrency: int
    budget_usd: float | None  # USD, >= 0
    max_attempts: int
    retry_failed: bool


def batch_run_options(*, concurrency_help: str, budget_help: str) -> Callable[[_F], _F]:
    """The options of :class:`BatchRunOptions` -> ``run: BatchRunOptions``."""
    options: list[_Option] = [
        click.option(
            "--concurrency",
            type=click.IntRange(min=1),
            default=4,
            show_default=True,
            help=concurrency_help,
        ),
        click.option(
            "--budget",
            type=click.FloatRange(min=0),
            default=None,
            metavar="USD",
            help=budget_help,
        ),
        click.option(
            "--max-attempts",
            type=click.IntRange(min=1),
            default=4,
            show_default=True,
            help="Attempts per job for 429, 5xx, timeouts and dropped connections.",
        ),
        click.option(
            "--retry-failed",
            is_flag=True,
            help="Try failed jobs again (moderated ones are never retried).",
        ),
    ]

    def build(
        concurrency: int, budget: float | None, max_attempts: int, retry_failed: bool
    ) -> BatchRunOptions:
        return BatchRunOptions(
            concurrency=concurrency,
            budget_usd=budget,
            max_attempts=max_attempts,
            retry_failed=retry_failed,
        )

    names = ("concurrency", "budget", "max_attempts", "retry_failed")
    return _bundle("run", names, options, build)


def batch_config(recipe: str | None, opts: JobOptions, run: BatchRunOptions) -> BatchConfig:
    """The :class:`~fluxcompose.batch.BatchConfig` that batch and ab's flags describe."""
    from ..batch import BatchConfig

    _, request, job, compose, candidates, stop_on_pass = opts
    return BatchConfig(
        recipe=load_recipe_arg(recipe),
        request_options=request,
        compose_options=compose,
        prompt=job.prompt,
        variables=job.variables,
        **run,
        compare=job.compare,
        subject_box=job.subject_box,
        candidates=candidates,
        stop_on_pass=stop_on_pass,
    )


def build_request_options(
    *,
    model: str | None,
    seed: int | None,
    aspect_ratio: str | None,
    safety_tolerance: int | None,
    output_format: str | None,
    prompt_upsampling: bool | None,
    canvas_format: str | None = None,
    references: str | None = None,
    reference_megapixels: float | None = None,
    steps: int | None = None,
    guidance: float | None = None,
) -> RequestOptions:
    """RequestOptions from the parsed flags; a fixed ratio is validated here, at the edge."""
    from ..request import RequestOptions

    if aspect_ratio is not None:
        rule = aspect_ratio.strip()
        if rule != "canvas" and not rule.startswith("match:"):
            try:
                rule = str(geometry.parse_ratio(rule))
            except RatioError as exc:
                raise InputError(f"--aspect-ratio: {exc}") from None
        aspect_ratio = rule
    return RequestOptions(
        model=model,
        seed=seed,
        aspect_ratio=aspect_ratio,
        safety_tolerance=safety_tolerance,
        output_format=output_format,
        prompt_upsampling=prompt_upsampling,
        canvas_format=canvas_format,
        references=references,
        reference_megapixels=reference_megapixels,
        steps=steps,
        guidance=guidance,
    )


def parse_variables(items: tuple[str, ...]) -> dict[str, str]:
    """``--var key=value`` pairs as a dict."""
    from ..recipes import parse_vars

    return parse_vars(items)


def load_recipe_arg(value: str | None) -> Recipe | None:
    """A recipe by built-in name or path, or None."""
    if value is None:
        return None
    from ..recipes import load_recipe

    return load_recipe(value)


def announce(backend: Backend, model: str, calls: int, price_per_call: float) -> None:
    """One stderr line: backend, model and the estimated price; the local preview says
    what it is, and that the model only changes the price."""
    from ..pricing import GATEWAY_UNKNOWN, price_source

    total = calls * price_per_call
    what = f"{calls} call{'s' if calls != 1 else ''}"
    notice(f"backend: {backend.name}, model: {model}, estimated cost: ${total:.3f} ({what})")
    if price_source(backend.name, model) == GATEWAY_UNKNOWN:
        notice(f"the gateway's price for {model} is unknown: estimated at the official price")
    text = getattr(backend, "NOTICE", None)
    if text:
        notice(str(text))
    model_notice = getattr(backend, "model_notice", None)
    if callable(model_notice):
        notice(str(model_notice(model)))


def batch_options(
    *, outdir_help: str, concurrency_help: str, budget_help: str
) -> Callable[[_F], _F]:
    """What batch and ab share: --recipe, -o/--outdir, the :class:`BatchRunOptions`
    (``run``) and the :class:`JobOptions` (``opts``)."""

    def add(f: _F) -> _F:
        f = job_options(f)
        f = batch_run_options(concurrency_help=concurrency_help, budget_help=budget_help)(f)
        return cast(_F, recipe_option(outdir_option(outdir_help)(f)))

    return add
