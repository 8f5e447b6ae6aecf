"""Read a PAIRS file: the list of jobs for ``fluxcompose batch``.

Three formats, chosen by extension (``.csv``, ``.jsonl``/``.ndjson``, ``.txt``)
or, for anything else, by sniffing the first meaningful line:

- CSV with a header. Image columns are ``left,right`` or ``image1,image2,...``;
  optional ``id``, ``prompt``, ``seed``, ``aspect_ratio``, ``subject_box`` (the chest
  box on the target, ``x0,y0,x1,y1`` normalised) and ``var.<name>``.
  A header with ``prompt`` and no image column describes text-to-image jobs.
- JSON Lines, one object per line, with the same keys (``vars`` may also be an object).
- Text, one ``left|right`` per line: the vendor's sample-script format. Blank lines
  and lines starting with ``#`` are skipped.

Relative paths resolve against the PAIRS file's folder; ``http(s)://`` URLs pass
through. An empty cell means "use the recipe's default". A malformed row becomes a
:class:`RowError` with its 1-based line number and does not stop the other rows; a
file that cannot be read at all, or a header without image columns, raises
:class:`~fluxcompose.errors.PairsError`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, PairsError, RatioError
from .geometry import MAX_SOURCES as MAX_IMAGES
from .geometry import parse_ratio
from .locate import Box, parse_box
from .textfiles import read_text

__all__ = ["MAX_IMAGES", "PairRow", "Pairs", "RowError", "read_pairs", "resolve_source"]

_IMAGE_COL = re.compile(r"^image([1-9][0-9]*)$")
_KNOWN = {"id", "prompt", "seed", "aspect_ratio", "subject_box", "left", "right", "vars", "images"}
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class PairRow:
    """One job from the PAIRS file.

    ``sources`` are absolute paths or URLs, in cell order (empty for text-to-image).
    ``None`` fields mean "the recipe's default". ``raw`` is the row as written,
    used to recognise the same row on a later run.
    """

    line: int
    sources: tuple[str, ...]
    id: str | None = None
    prompt: str | None = None
    seed: int | None = None
    aspect_ratio: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    raw: str = ""
    subject_box: Box | None = None


@dataclass(frozen=True)
class RowError:
    """A row that could not be read; ``line`` is 1-based."""

    line: int
    message: str
    raw: str = ""

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class Pairs:
    """The parsed file: good rows and bad rows, both in file order."""

    path: Path
    format: str  # "csv" | "jsonl" | "text"
    rows: list[PairRow]
    errors: list[RowError]

    def __len__(self) -> int:
        return len(self.rows) + len(self.errors)


def resolve_source(value: str, base: Path) -> str:
    """A URL as is; a path made absolute against ``base`` (the PAIRS file's folder)."""
    value = value.strip()
    low = value.lower()
    if low.startswith(("http://", "https://")):
        return value
    if "://" in value:
        # ftp://, file://, s3://...: not something images.py will fetch.
        raise ValueError(f"unsupported URL scheme in {value!r}: only http and https are accepted")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base / path
    return str(path)


def read_pairs(path: str | Path) -> Pairs:
    """Parse a PAIRS file. Raises PairsError when the file as a whole is unusable."""
    path = Path(path)
    text = read_text(path, "pairs file", PairsError, encoding="utf-8-sig")
    fmt = _detect_format(path, text)
    base = path.resolve().parent
    if fmt == "csv":
        rows, errors = _read_csv(text, base, path)
    elif fmt == "jsonl":
        rows, errors = _read_jsonl(text, base)
    else:
        rows, errors = _read_text(text, base)
    if not rows and not errors:
        raise PairsError(f"pairs file {path} has no rows")
    return Pairs(path=path, format=fmt, rows=rows, errors=errors)


def _meaningful_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def _detect_format(path: Path, text: str) -> str:
    ext = path.suffix.lower()
    if ext == ".csv":
        return "csv"
    if ext in (".jsonl", ".ndjson"):
        return "jsonl"
    first = next((line for _, line in _meaningful_lines(text)), "")
    if first.startswith("{"):
        return "jsonl"
    if ext == ".txt" or "|" in first:
        return "text"
    return "csv"


# -- cells -> PairRow ------------------------------------------------------------


def _cell(value: Any) -> str | None:
    """A cell's text, or None when empty (empty means the recipe's default)."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _build_row(
    line: int,
    images: list[str | None],
    values: Mapping[str, Any],
    variables: Mapping[str, Any],
    base: Path,
    raw: str,
    *,
    pair: bool = False,
) -> PairRow:
    """Validate one row's cells; raises ValueError with a message for the RowError.

    ``pair``: the images came from left,right cells, which go together.
    """
    if pair and any(v is None for v in images):
        if all(v is None for v in images) and _cell(values.get("prompt")) is not None:
            images = []  # a text-to-image row in a left,right file
        else:
            raise ValueError("both 'left' and 'right' are needed")
    # Trailing empty image cells are allowed (rows with fewer images); gaps are not.
    while images and images[-1] is None:
        images.pop()
    if any(v is None for v in images):
        missing = [i + 1 for i, v in enumerate(images) if v is None]
        raise ValueError(f"image {missing[0]} is empty but a later image is given")
    prompt = _cell(values.get("prompt"))
    if not images and prompt is None:
        raise ValueError("no images and no prompt: nothing to do")
    if len(images) > MAX_IMAGES:
        raise ValueError(f"{len(images)} images: at most {MAX_IMAGES} are supported")
    sources = tuple(resolve_source(v, base) for v in images if v is not None)

    job_id = _cell(values.get("id"))
    if job_id is not None and not _ID_RE.match(job_id):
        raise ValueError(
            f"id {job_id!r} must be 1-128 characters of letters, digits, '.', '_' or '-'"
            " (it names the output files)"
        )
    seed: int | None = None
    seed_text = _cell(values.get("seed"))
    if seed_text is not None:
        try:
            seed = int(seed_text)
        except ValueError:
            raise ValueError(f"seed {seed_text!r} is not a whole number") from None
        if seed < 0:
            raise ValueError(f"seed {seed} is negative")
    aspect = _cell(values.get("aspect_ratio"))
    if aspect is not None and aspect != "canvas" and not aspect.startswith("match:"):
        try:
            aspect = str(parse_ratio(aspect))
        except RatioError as exc:
            raise ValueError(str(exc)) from None
    subject_box: Box | None = None
    box_value = values.get("subject_box")
    box_text = box_value if isinstance(box_value, list) else _cell(box_value)
    if box_text is not None:
        try:
            subject_box = parse_box(box_text)
        except InputError as exc:
            raise ValueError(exc.message) from None
    clean_vars: dict[str, str] = {}
    for name, value in variables.items():
        if not _VAR_NAME.match(name):
            raise ValueError(f"variable name {name!r} is not a valid identifier")
        text = _cell(value)
        if text is not None:
            clean_vars[name] = text
    return PairRow(
        line=line,
        sources=sources,
        id=job_id,
        prompt=prompt,
        seed=seed,
        aspect_ratio=aspect,
        variables=clean_vars,
        raw=raw,
        subject_box=subject_box,
    )


# -- CSV ----------------------------------------------------------------------------


def _image_columns(header: list[str], path: Path) -> list[str]:
    """The image columns in source order; PairsError when the header has none usable."""
    cols = set(header)
    numbered = sorted(
        ((int(m.group(1)), name) for name in header if (m := _IMAGE_COL.match(name))),
    )
    has_lr = "left" in cols or "right" in cols
    if has_lr and numbered:
        raise PairsError(f"{path}: use either left,right or image1,image2,... columns, not both")
    if has_lr:
        if not ("left" in cols and "right" in cols):
            raise PairsError(f"{path}: the header needs both 'left' and 'right' columns")
        return ["left", "right"]
    if numbered:
        indexes = [i for i, _ in numbered]
        if indexes != list(range(1, len(indexes) + 1)):
            raise PairsError(f"{path}: image columns must be image1, image2, ... without gaps")
        if len(indexes) > MAX_IMAGES:
            raise PairsError(f"{path}: at most {MAX_IMAGES} image columns")
        return [name for _, name in numbered]
    if "prompt" in cols:
        return []  # text-to-image jobs
    raise PairsError(
        f"{path}: the header must name the images as left,right or image1,image2,..."
        f" (found: {', '.join(header) or 'nothing'})"
    )


def _read_csv(text: str, base: Path, path: Path) -> tuple[list[PairRow], list[RowError]]:
    lines = text.splitlines(keepends=True)
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[PairRow] = []
    errors: list[RowError] = []
    image_cols: list[str] = []
    next_line = 1
    try:
        for record in reader:
            start, next_line = next_line, reader.line_num + 1
            raw = "".join(lines[start - 1 : reader.line_num]).rstrip("\r\n")
            if not record or all(not c.strip() for c in record):
                continue
            if header is None:
                header = [c.strip().lower() for c in record]
                image_cols = _image_columns(header, path)
                dupes = sorted({c for c in header if header.count(c) > 1 and c})
                if dupes:
                    raise PairsError(f"{path}: duplicate column {dupes[0]!r}")
                unknown = [
                    c
                    for c in header
                    if c
                    and c not in _KNOWN
                    and not _IMAGE_COL.match(c)
                    and not c.startswith("var.")
                ]
                if unknown:
                    raise PairsError(
                        f"{path}: unknown column {unknown[0]!r} (known: left, right, image1...,"
                        " id, prompt, seed, aspect_ratio, subject_box, var.<name>)"
                    )
                continue
            if len(record) > len(header) and any(c.strip() for c in record[len(header) :]):
                errors.append(
                    RowError(start, f"{len(record)} cells but the header has {len(header)}", raw)
                )
                continue
            cells = dict(zip(header, record, strict=False))
            images = [_cell(cells.get(c)) for c in image_cols]
            variables = {k[4:]: v for k, v in cells.items() if k.startswith("var.")}
            try:
                rows.append(
                    _build_row(
                        start,
                        images,
                        cells,
                        variables,
                        base,
                        raw,
                        pair=image_cols == ["left", "right"],
                    )
                )
            except ValueError as exc:
                errors.append(RowError(start, str(exc), raw))
    except csv.Error as exc:
        errors.append(RowError(next_line, f"malformed CSV: {exc}"))
    if header is None:
        raise PairsError(f"pairs file {path} is empty: expected a header such as left,right")
    return rows, errors


# -- JSON Lines ---------------------------------------------------------------------


def _read_jsonl(text: str, base: Path) -> tuple[list[PairRow], list[RowError]]:
    rows: list[PairRow] = []
    errors: list[RowError] = []
    for number, line in _meaningful_lines(text):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(RowError(number, f"not valid JSON: {exc.msg}", line))
            continue
        try:
            if not isinstance(obj, dict):
                raise ValueError("expected a JSON object")
            rows.append(_jsonl_row(number, obj, base, line))
        except ValueError as exc:
            errors.append(RowError(number, str(exc), line))
    return rows, errors


def _jsonl_row(number: int, obj: dict[str, Any], base: Path, raw: str) -> PairRow:
    keys = {str(k).lower(): v for k, v in obj.items()}
    unknown = [
        k for k in keys if k not in _KNOWN and not _IMAGE_COL.match(k) and not k.startswith("var.")
    ]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}")
    numbered = sorted((int(m.group(1)), k) for k in keys if (m := _IMAGE_COL.match(k)))
    kinds = sum(bool(x) for x in ("left" in keys or "right" in keys, numbered, "images" in keys))
    if kinds > 1:
        raise ValueError("use one of left/right, image1..., or images, not several")
    images: list[str | None]
    pair = "left" in keys or "right" in keys
    if pair:
        images = [_cell(keys.get("left")), _cell(keys.get("right"))]
    elif numbered:
        top = numbered[-1][0]
        images = [_cell(keys.get(f"image{i}")) for i in range(1, top + 1)]
    elif "images" in keys:
        value = keys["images"]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("'images' must be a list of paths or URLs")
        images = [_cell(v) for v in value]
    else:
        images = []
    box = keys.get("subject_box")
    if box is not None and not isinstance(box, str | list):
        raise ValueError("'subject_box' must be \"x0,y0,x1,y1\" or a list of four numbers")
    for key in ("prompt", "id", "aspect_ratio"):
        if key in keys and keys[key] is not None and not isinstance(keys[key], str):
            raise ValueError(f"{key!r} must be a string")
    if "seed" in keys and isinstance(keys["seed"], bool | float):
        raise ValueError("'seed' must be a whole number")
    variables: dict[str, Any] = {k[4:]: v for k, v in keys.items() if k.startswith("var.")}
    if "vars" in keys:
        if not isinstance(keys["vars"], dict):
            raise ValueError("'vars' must be an object")
        variables.update({str(k): v for k, v in keys["vars"].items()})
    for name, value in variables.items():
        if value is not None and not isinstance(value, str | int | float):
            raise ValueError(f"variable {name!r} must be a string or a number")
    return _build_row(number, images, keys, variables, base, raw, pair=pair)


# -- text: left|right ---------------------------------------------------------------


def _read_text(text: str, base: Path) -> tuple[list[PairRow], list[RowError]]:
    rows: list[PairRow] = []
    errors: list[RowError] = []
    for number, line in _meaningful_lines(text):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 2 or not all(parts):
            errors.append(RowError(number, "expected 'left|right' with two non-empty paths", line))
            continue
        try:
            rows.append(_build_row(number, list(parts), {}, {}, base, line))
        except ValueError as exc:
            errors.append(RowError(number, str(exc), line))
    return rows, errors
