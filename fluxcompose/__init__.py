"""fluxcompose: two-image edits with FLUX.1 Kontext.

Compose sources into one canvas inside Kontext's one-megapixel budget and
3:7..7:3 aspect range, send it with a recipe prompt through a backend, download
the result at once, and measure it against its sources.

The public surface::

    from fluxcompose import compose, size_for, load_recipe, run_job, JobSpec
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .compose import Cell, Composite, compose, crop_cell
from .errors import (
    AuthError,
    ChecksFailed,
    ConfigError,
    FluxComposeError,
    GenerationError,
    ImageError,
    InputError,
    Moderated,
    RateLimited,
    RatioError,
    RecipeError,
    RequestError,
    ResultExpired,
    RetryableError,
    TransientError,
)
from .geometry import BUCKETS, Ratio, bucket_for, parse_ratio, plan_layout, size_for
from .images import load_image

try:
    __version__ = version("fluxcompose")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

__all__ = [
    "BUCKETS",
    "AuthError",
    "Cell",
    "ChecksFailed",
    "Composite",
    "ConfigError",
    "FluxComposeError",
    "GenerationError",
    "ImageError",
    "InputError",
    "Moderated",
    "RateLimited",
    "Ratio",
    "RatioError",
    "RecipeError",
    "RequestError",
    "ResultExpired",
    "RetryableError",
    "TransientError",
    "__version__",
    "bucket_for",
    "compose",
    "crop_cell",
    "load_image",
    "parse_ratio",
    "plan_layout",
    "size_for",
]
