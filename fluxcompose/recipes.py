"""Recipes: TOML files that name the sources, the prompt template and the defaults of a job.

A recipe is validated once, when it is loaded, so a typo in a key, a placeholder
or a value is an input error that names it (:class:`~fluxcompose.errors.RecipeError`,
exit 2) before any image is read or any request is paid for.

The built-ins live in the repository's top-level ``recipes/`` folder; the wheel
ships them as ``fluxcompose/_recipes/`` (hatchling ``force-include``).

Over 500 lines because every key of a recipe is validated here, with a message that names
it (types, ranges, placeholders, checks), so a typo fails before anything is paid for.
"""

from __future__ import annotations

import copy
import importlib.resources
import math
import os
import re
import string
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RatioError, RecipeError
from .geometry import MAX_SOURCES
from .textfiles import read_text

__all__ = [
    "BUILTIN_PLACEHOLDERS",
    "COMPOSE_KEYS",
    "REFERENCE_MODES",
    "REQUEST_KEYS",
    "TOP_LEVEL_KEYS",
    "Recipe",
    "builtin_dir",
    "list_recipes",
    "load_recipe",
    "parse_vars",
    "recipe_from_dict",
    "template_placeholders",
    "to_toml",
]

TOP_LEVEL_KEYS: tuple[str, ...] = (
    "name",
    "description",
    "sources",
    "prompt",
    "prompt_separate",
    "variables",
    "compose",
    "request",
    "checks",
)
COMPOSE_KEYS: tuple[str, ...] = (
    "layout",
    "gutter",
    "gutter_color",
    "background",
    "labels",
    "outline",
    "megapixels",
    "upscale",
)
REQUEST_KEYS: tuple[str, ...] = (
    "model",
    "aspect_ratio",
    "safety_tolerance",
    "output_format",
    "prompt_upsampling",
    "seed",
    "references",
    "reference_megapixels",
    "steps",
    "guidance",
)

REFERENCE_MODES: tuple[str, ...] = ("stitched", "separate")
"""How the sources are sent: one stitched canvas, or each as its own reference image."""

# Placeholders every prompt may use without declaring them; their values come
# from the recipe itself, so rendering never depends on anything else.
BUILTIN_PLACEHOLDERS: dict[str, str] = {
    "recipe": "the recipe's name",
    "n_images": "the number of source images, e.g. 2",
}

_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SOURCE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_FORMATTER = string.Formatter()
_Fail = Callable[[str], RecipeError]


# ---------------------------------------------------------------------------
# Templates


def template_placeholders(template: str, *, where: str = "prompt") -> list[str]:
    """The placeholder names in ``template``, in order of first use.

    Only plain ``{name}`` fields are allowed: positional (``{}``, ``{0}``),
    attribute (``{a.b}``), index (``{a[0]}``), conversion (``{a!r}``) and
    format-spec (``{a:>9}``) fields are rejected, as are unbalanced braces.
    ``{{`` and ``}}`` stand for literal braces.
    """
    names: list[str] = []
    for _literal, field_name, spec, conversion in _parse(template, where):
        if field_name is None:
            continue
        shown = "{" + field_name + ("!" + conversion if conversion else "")
        shown += (":" + spec if spec else "") + "}"
        if not _IDENT_RE.match(field_name):
            raise RecipeError(
                f"{where}: placeholder {shown} is not allowed: use {{name}} with a plain "
                "identifier (write {{ and }} for literal braces)"
            )
        if spec or conversion:
            raise RecipeError(
                f"{where}: placeholder {shown} is not allowed: conversions and format "
                f"specs are not supported, write {{{field_name}}}"
            )
        if field_name not in names:
            names.append(field_name)
    return names


def _parse(template: str, where: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise RecipeError(
            f"{where}: {exc} (write {{{{ and }}}} for literal braces)".replace("\n", " ")
        ) from None


def _substitute(template: str, values: Mapping[str, str], where: str) -> str:
    """Fill ``template`` from ``values``; values are inserted verbatim, never re-parsed."""
    parts: list[str] = []
    for literal, field_name, _spec, _conv in _parse(template, where):
        parts.append(literal)
        if field_name is not None:
            parts.append(values[field_name])
    return "".join(parts)


def parse_vars(items: Iterable[str]) -> dict[str, str]:
    """Parse ``--var key=value`` options into a dict (later ones win).

    The value may contain ``=``; the key must be an identifier.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _IDENT_RE.match(key):
            raise RecipeError(f"invalid --var {item!r}: write it as name=value")
        out[key] = value
    return out


# ---------------------------------------------------------------------------
# The recipe


@dataclass(frozen=True)
class Recipe:
    """A validated recipe.

    ``sources`` names the canvas cells in order; ``prompt`` is the template with
    ``{placeholders}``; ``prompt_separate`` (optional) is the one used when the sources
    are sent as separate references ("image 1", "image 2" rather than left and right);
    ``variables`` holds their defaults. ``compose``,
    ``request`` and ``checks`` hold only what the file sets (callers apply their
    own defaults for the rest). ``path`` is the file it came from, if any.
    """

    name: str
    description: str
    sources: tuple[str, ...]
    prompt: str
    variables: dict[str, str] = field(default_factory=dict)
    compose: dict[str, Any] = field(default_factory=dict)
    request: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)
    prompt_separate: str | None = None

    def placeholders(self) -> set[str]:
        """The placeholder names used by the prompt templates."""
        used = set(template_placeholders(self.prompt, where=f"recipe {self.name!r}: prompt"))
        if self.prompt_separate is not None:
            where = f"recipe {self.name!r}: prompt_separate"
            used |= set(template_placeholders(self.prompt_separate, where=where))
        return used

    def template(self, *, separate: bool = False) -> str:
        """The prompt template: ``prompt_separate`` for separate references when the
        recipe has one, else ``prompt``."""
        if separate and self.prompt_separate is not None:
            return self.prompt_separate
        return self.prompt

    def builtin_values(self) -> dict[str, str]:
        """Values of the built-in placeholders for this recipe."""
        return {"recipe": self.name, "n_images": str(len(self.sources))}

    def render(
        self,
        variables: Mapping[str, str] | None = None,
        prompt: str | None = None,
        *,
        separate: bool = False,
    ) -> str:
        """The prompt with every placeholder filled in.

        ``separate``: the sources go as separate references, so ``prompt_separate`` is
        the template when the recipe has one.

        ``variables`` override the recipe's defaults. ``prompt``, when given,
        replaces the template and is rendered with the same values; the
        variables it uses count as known, so ``--prompt "... {colour}" --var
        colour=red`` works. Raises :class:`RecipeError` naming an override that
        no template knows or a placeholder that has no value.
        """
        overrides = {str(k): str(v) for k, v in (variables or {}).items()}
        own = "prompt_separate" if separate and self.prompt_separate is not None else "prompt"
        where = f"recipe {self.name!r}: " + ("--prompt" if prompt is not None else own)
        template = self.template(separate=separate) if prompt is None else prompt
        used = template_placeholders(template, where=where)
        known = set(self.variables) | (set(used) if prompt is not None else set())
        unknown = sorted(set(overrides) - known)
        if unknown:
            listed = ", ".join(sorted(known)) or "none"
            raise RecipeError(
                f"recipe {self.name!r} has no variable {_names(unknown)} "
                f"(known variables: {listed})"
            )
        values = {**self.builtin_values(), **self.variables, **overrides}
        missing = [name for name in used if name not in values]
        if missing:
            raise RecipeError(
                f"{where}: no value for placeholder {_names(missing, braces=True)}; "
                f"give it with --var {missing[0]}=VALUE"
            )
        return _substitute(template, values, where)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as TOML-shaped data (the ``path`` is not part of it;
        ``prompt_separate`` only when set)."""
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "sources": list(self.sources),
            "prompt": self.prompt,
        }
        if self.prompt_separate is not None:
            data["prompt_separate"] = self.prompt_separate
        return data | {
            "variables": dict(self.variables),
            "compose": copy.deepcopy(self.compose),
            "request": copy.deepcopy(self.request),
            "checks": copy.deepcopy(self.checks),
        }

    def to_toml(self) -> str:
        """The recipe as a TOML document that loads back to :meth:`to_dict`."""
        return to_toml(self.to_dict())


def _names(names: list[str], *, braces: bool = False) -> str:
    shown = [("{" + n + "}") if braces else repr(n) for n in names]
    return ", ".join(shown)


# ---------------------------------------------------------------------------
# Validation


def recipe_from_dict(
    data: Mapping[str, Any], *, path: Path | None = None, origin: str | None = None
) -> Recipe:
    """Validate TOML-shaped ``data`` and build a :class:`Recipe`.

    ``origin`` prefixes error messages (default: the path, else "recipe").
    ``name`` defaults to the file's stem when a path is given.
    """
    where = origin or (str(path) if path is not None else "recipe")

    def fail(message: str) -> RecipeError:
        return RecipeError(f"{where}: {message}")

    if not isinstance(data, Mapping):
        raise fail("a recipe must be a TOML table")
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise fail(
            f"unknown key {_names(unknown)} at the top level "
            f"(known keys: {', '.join(TOP_LEVEL_KEYS)})"
        )

    name = data.get("name", path.stem if path is not None else None)
    if not isinstance(name, str) or not name.strip() or "\n" in name:
        raise fail("'name' must be a non-empty one-line string")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("'description' must be a string")

    if "sources" not in data:
        raise fail('missing key \'sources\' (the names of the cells, e.g. ["pattern", "target"])')
    sources = data["sources"]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise fail("'sources' must be a list of strings")
    if not 1 <= len(sources) <= MAX_SOURCES:
        raise fail(f"'sources' must name 1 to {MAX_SOURCES} images, not {len(sources)}")
    for s in sources:
        if not _SOURCE_RE.match(s):
            raise fail(f"source name {s!r} must use only letters, digits, '_' and '-'")
    dupes = sorted({s for s in sources if sources.count(s) > 1})
    if dupes:
        raise fail(f"duplicate source name {_names(dupes)}")

    if "prompt" not in data:
        raise fail("missing key 'prompt'")
    prompt = data["prompt"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise fail("'prompt' must be a non-empty string")

    variables = _table(data, "variables", fail)
    for key, value in variables.items():
        if not _IDENT_RE.match(key):
            raise fail(f"variable name {key!r} in [variables] must be an identifier")
        if not isinstance(value, str):
            raise fail(
                f"variable {key!r} in [variables] must be a string, "
                f"not {_type_name(value)} (quote it)"
            )

    prompt_separate = data.get("prompt_separate")
    if prompt_separate is not None and (
        not isinstance(prompt_separate, str) or not prompt_separate.strip()
    ):
        raise fail("'prompt_separate' must be a non-empty string")
    templates = [("prompt", prompt)]
    if prompt_separate is not None:
        templates.append(("prompt_separate", prompt_separate))
    for key, template in templates:
        used = template_placeholders(template, where=f"{where}: {key}")
        undeclared = [n for n in used if n not in variables and n not in BUILTIN_PLACEHOLDERS]
        if undeclared:
            raise fail(
                f"{key} uses unknown placeholder {_names(undeclared, braces=True)}: declare it "
                f"in [variables] (built-ins: {', '.join(BUILTIN_PLACEHOLDERS)})"
            )

    compose = _table(data, "compose", fail)
    _check_keys(compose, "compose", COMPOSE_KEYS, fail)
    _validate_compose(compose, len(sources), fail)

    request = _table(data, "request", fail)
    _check_keys(request, "request", REQUEST_KEYS, fail)
    _validate_request(request, sources, fail)

    checks = _table(data, "checks", fail)
    known_checks = _known_checks()
    _check_keys(checks, "checks", known_checks, fail)
    _validate_checks(checks, known_checks, fail)

    return Recipe(
        name=name,
        description=description,
        sources=tuple(sources),
        prompt=prompt,
        variables=dict(variables),
        compose=copy.deepcopy(dict(compose)),
        request=copy.deepcopy(dict(request)),
        checks=copy.deepcopy(dict(checks)),
        path=path,
        prompt_separate=prompt_separate,
    )


def _known_checks() -> Mapping[str, Any]:
    # compare.py is the one place that defines the checks; imported lazily
    # because it pulls in numpy and OpenCV, which loading a recipe does not need.
    from .compare import CHECKS

    if isinstance(CHECKS, Mapping):
        return CHECKS
    return dict.fromkeys(CHECKS)


def _table(data: Mapping[str, Any], key: str, fail: _Fail) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise fail(f"'{key}' must be a table ([{key}]), not {_type_name(value)}")
    return dict(value)


def _check_keys(table: Mapping[str, Any], name: str, known: Iterable[str], fail: _Fail) -> None:
    known = tuple(known)
    unknown = [k for k in table if k not in known]
    if unknown:
        raise fail(
            f"unknown key {_names(unknown)} in [{name}] (known keys: {', '.join(sorted(known))})"
        )


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _check_colour(value: Any, key: str, fail: _Fail) -> None:
    from PIL import ImageColor  # PIL is a dependency anyway; it knows CSS colour names

    if not isinstance(value, str):
        raise fail(f"'{key}' in [compose] must be a colour string, e.g. \"#ffffff\"")
    try:
        ImageColor.getrgb(value)
    except ValueError:
        raise fail(f"'{key}' in [compose] is not a colour: {value!r}") from None


def _validate_compose(compose: Mapping[str, Any], n_sources: int, fail: _Fail) -> None:
    from .geometry import LAYOUTS

    if "layout" in compose and compose["layout"] not in LAYOUTS:
        raise fail(
            f"'layout' in [compose] must be one of {', '.join(LAYOUTS)}, not {compose['layout']!r}"
        )
    if "gutter" in compose and not (_is_int(compose["gutter"]) and compose["gutter"] >= 0):
        raise fail("'gutter' in [compose] must be a whole number of pixels >= 0")
    for key in ("gutter_color", "background"):
        if key in compose:
            _check_colour(compose[key], key, fail)
    for key in ("outline", "upscale"):
        if key in compose and not isinstance(compose[key], bool):
            raise fail(f"'{key}' in [compose] must be true or false")
    if "labels" in compose:
        labels = compose["labels"]
        if isinstance(labels, list):
            if not all(isinstance(t, str) for t in labels) or len(labels) != n_sources:
                raise fail(
                    f"'labels' in [compose] must be true, false or a list of "
                    f"{n_sources} strings (one per source)"
                )
        elif not isinstance(labels, bool):
            raise fail("'labels' in [compose] must be true, false or a list of strings")
    if "megapixels" in compose:
        mp = compose["megapixels"]
        if not (_is_number(mp) and 0 < mp <= 16):
            raise fail("'megapixels' in [compose] must be a number in (0, 16]")


def _validate_request(request: Mapping[str, Any], sources: list[str], fail: _Fail) -> None:
    from .backends.base import validate_model
    from .errors import ConfigError
    from .geometry import parse_ratio

    if "model" in request:
        try:
            validate_model(request["model"])
        except ConfigError as exc:
            raise fail(f"'model' in [request]: {exc.message}") from None
    if "aspect_ratio" in request:
        ar = request["aspect_ratio"]
        if not isinstance(ar, str):
            raise fail("'aspect_ratio' in [request] must be a string: canvas, match:NAME or W:H")
        if ar.startswith("match:"):
            target = ar[len("match:") :]
            if target not in sources:
                raise fail(
                    f"'aspect_ratio' in [request] is {ar!r} but {target!r} is not a source "
                    f"(sources: {', '.join(sources)})"
                )
        elif ar != "canvas":
            if ":" not in ar:
                raise fail(
                    f"'aspect_ratio' in [request] must be canvas, match:NAME or W:H, not {ar!r}"
                )
            try:
                parse_ratio(ar)
            except RatioError as exc:
                raise fail(f"'aspect_ratio' in [request]: {exc}") from None
    if "safety_tolerance" in request:
        st = request["safety_tolerance"]
        if not (_is_int(st) and 0 <= st <= 6):
            raise fail(f"'safety_tolerance' in [request] must be an integer 0..6, not {st!r}")
    if "output_format" in request and request["output_format"] not in ("png", "jpeg", "webp"):
        raise fail(
            "'output_format' in [request] must be png, jpeg or webp,"
            f" not {request['output_format']!r}"
        )
    if "prompt_upsampling" in request and not isinstance(request["prompt_upsampling"], bool):
        raise fail("'prompt_upsampling' in [request] must be true or false")
    if "seed" in request:
        seed = request["seed"]
        if not (_is_int(seed) and 0 <= seed < 2**63):
            raise fail(f"'seed' in [request] must be an integer >= 0, not {seed!r}")
    if "references" in request and request["references"] not in REFERENCE_MODES:
        raise fail(
            f"'references' in [request] must be stitched or separate, not {request['references']!r}"
        )
    if "reference_megapixels" in request:
        mp = request["reference_megapixels"]
        if not (_is_number(mp) and 0 < mp <= 4):
            raise fail(
                f"'reference_megapixels' in [request] must be a number in (0, 4], not {mp!r}"
            )
    if "steps" in request:
        steps = request["steps"]
        if not (_is_int(steps) and 1 <= steps <= 50):
            raise fail(f"'steps' in [request] must be an integer 1..50, not {steps!r}")
    if "guidance" in request:
        g = request["guidance"]
        if not (_is_number(g) and 1.5 <= g <= 10):
            raise fail(f"'guidance' in [request] must be a number 1.5..10, not {g!r}")


def _validate_checks(checks: Mapping[str, Any], known: Mapping[str, Any], fail: _Fail) -> None:
    # compare.py's spec for a check says the shape of its expected value
    # (``kind``: bool, min, max or range); without one, any of those shapes passes.
    for key, value in checks.items():
        kind = getattr(known.get(key), "kind", None)
        wanted, ok = _CHECK_SHAPES.get(kind, _ANY_CHECK_SHAPE)
        if not ok(value):
            raise fail(f"check {key!r} in [checks] must be {wanted}, not {value!r}")


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_range(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(_is_number(v) for v in value)
        and value[0] <= value[1]
    )


_CHECK_SHAPES: dict[Any, tuple[str, Callable[[Any], bool]]] = {
    "bool": ("true or false", _is_bool),
    "min": ("a number", _is_number),
    "max": ("a number", _is_number),
    "range": ("a [low, high] range", _is_range),
}
_ANY_CHECK_SHAPE: tuple[str, Callable[[Any], bool]] = (
    "true/false, a number or a [low, high] range",
    lambda v: _is_bool(v) or _is_number(v) or _is_range(v),
)


# ---------------------------------------------------------------------------
# Loading


def builtin_dir() -> Path:
    """The folder holding the built-in recipes.

    Installed from a wheel, that is ``fluxcompose/_recipes``; in a source or
    editable checkout, the repository's top-level ``recipes/``.
    """
    try:
        packaged = importlib.resources.files("fluxcompose") / "_recipes"
        if isinstance(packaged, Path) and packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - defensive
        pass
    return Path(__file__).resolve().parent.parent / "recipes"


def _builtin_names() -> list[str]:
    folder = builtin_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.toml"))


def _looks_like_path(value: str) -> bool:
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return any(s in value for s in seps) or value.endswith(".toml")


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load a recipe by built-in name (``pattern-transfer``) or by file path.

    A :class:`~pathlib.Path`, or a string containing a path separator or ending
    in ``.toml``, is a file; anything else is a built-in name.
    """
    if isinstance(name_or_path, Path) or _looks_like_path(name_or_path):
        path = Path(name_or_path)
        return _load_file(path, origin=str(path))
    names = _builtin_names()
    if name_or_path not in names:
        raise RecipeError(
            f"unknown recipe {name_or_path!r} (built-in recipes: {', '.join(names) or 'none'}; "
            "or give the path to a .toml file)"
        )
    return _load_file(builtin_dir() / f"{name_or_path}.toml", origin=f"recipe {name_or_path!r}")


def _load_file(path: Path, *, origin: str) -> Recipe:
    text = read_text(path, "recipe file", RecipeError)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())
        raise RecipeError(f"{path}: invalid TOML: {message}") from None
    return recipe_from_dict(data, path=path, origin=origin)


def list_recipes() -> list[Recipe]:
    """Every built-in recipe, sorted by name."""
    recipes = [load_recipe(name) for name in _builtin_names()]
    return sorted(recipes, key=lambda r: r.name)


# ---------------------------------------------------------------------------
# Writing TOML (tomllib only reads)


def to_toml(data: Mapping[str, Any]) -> str:
    """Write ``data`` as TOML with ``tomli_w``: scalars and arrays first, then one
    ``[table]`` per mapping. ``tomllib.loads(to_toml(d)) == d`` for TOML-representable data."""
    import tomli_w  # only ``recipes show`` writes TOML: keep it off start-up

    return tomli_w.dumps(data)
