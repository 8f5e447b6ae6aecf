"""--subject-box on run and batch, and the subject_box column or key in PAIRS files.

The box is the chest box on the target, ``x0,y0,x1,y1`` normalised 0..1 (DESIGN.md
section 10). It must reach the request context the local preview reads, be part of
the job's identity, and be refused with one line and exit 2 when it is malformed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fluxcompose.cli import cli
from fluxcompose.errors import InputError
from fluxcompose.pairs import read_pairs
from fluxcompose.recipes import load_recipe
from fluxcompose.run import JobSpec, prepare_job

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PATTERN = str(SAMPLES / "pattern.png")
MODEL = str(SAMPLES / "model.jpg")

BAD_BOXES = [
    "0.1,0.2,0.9",  # three numbers
    "0.1,0.2,0.9,1.2",  # outside 0..1
    "-0.1,0.2,0.9,1.0",  # outside 0..1
    "0.6,0.2,0.4,1.0",  # x0 >= x1
    "0.1,0.8,0.9,0.8",  # y0 >= y1
    "a,b,c,d",  # not numbers
    "nan,0.2,0.9,1.0",  # not finite
]


def test_csv_subject_box_column_quoted_or_space_separated(tmp_path: Path) -> None:
    p = tmp_path / "pairs.csv"
    p.write_text(
        'left,right,subject_box\na.png,b.png,"0.1,0.5,0.9,1.0"\n'
        "c.png,d.png,0.2 0.4 0.8 0.95\ne.png,f.png,\n",
        encoding="utf-8",
    )
    pairs = read_pairs(p)
    assert pairs.errors == []
    a, c, e = pairs.rows
    assert a.subject_box == (0.1, 0.5, 0.9, 1.0)
    assert c.subject_box == (0.2, 0.4, 0.8, 0.95)
    assert e.subject_box is None  # an empty cell: detect the subject


def test_jsonl_subject_box_as_list_or_text(tmp_path: Path) -> None:
    p = tmp_path / "pairs.jsonl"
    p.write_text(
        '{"left": "a.png", "right": "b.png", "subject_box": [0.1, 0.5, 0.9, 1]}\n'
        '{"left": "a.png", "right": "b.png", "subject_box": "0.2,0.4,0.8,0.95"}\n'
        '{"left": "a.png", "right": "b.png", "subject_box": 7}\n',
        encoding="utf-8",
    )
    pairs = read_pairs(p)
    assert [r.subject_box for r in pairs.rows] == [(0.1, 0.5, 0.9, 1.0), (0.2, 0.4, 0.8, 0.95)]
    (err,) = pairs.errors
    assert err.line == 3 and "subject_box" in err.message


@pytest.mark.parametrize("box", BAD_BOXES)
def test_a_malformed_box_is_a_row_error_with_its_line_and_the_others_stand(
    tmp_path: Path, box: str
) -> None:
    p = tmp_path / "pairs.csv"
    p.write_text(
        f'left,right,subject_box\na.png,b.png,"{box}"\nc.png,d.png,"0.1,0.5,0.9,1"\n',
        encoding="utf-8",
    )
    pairs = read_pairs(p)
    (err,) = pairs.errors
    assert err.line == 2 and "subject box" in err.message
    assert [r.line for r in pairs.rows] == [3]


def test_the_box_reaches_the_request_context_and_changes_the_job_id() -> None:
    recipe = load_recipe("pattern-transfer")
    plain = prepare_job(JobSpec(recipe=recipe, sources=(PATTERN, MODEL)), backend_name="local")
    boxed = prepare_job(
        JobSpec(recipe=recipe, sources=(PATTERN, MODEL), subject_box=(0.1, 0.2, 0.9, 0.95)),
        backend_name="local",
    )
    other = prepare_job(
        JobSpec(recipe=recipe, sources=(PATTERN, MODEL), subject_box=(0.2, 0.2, 0.8, 0.95)),
        backend_name="local",
    )
    assert "subject_box" not in plain.request.context
    assert boxed.request.context["subject_box"] == [0.1, 0.2, 0.9, 0.95]
    assert len({plain.job_id, boxed.job_id, other.job_id}) == 3


def test_a_box_without_a_target_image_is_bad_input() -> None:
    with pytest.raises(InputError, match="subject-box"):
        prepare_job(
            JobSpec(recipe=None, prompt="a fox", subject_box=(0.1, 0.2, 0.9, 0.95)),
            backend_name="local",
        )


@pytest.mark.parametrize("box", BAD_BOXES)
def test_run_refuses_a_bad_box_in_one_line_with_exit_2(tmp_path: Path, box: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["run", PATTERN, MODEL, "-r", "pattern-transfer", "-o", str(tmp_path / "out")]
        + ["--backend", "local", "--subject-box", box],
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "subject-box" in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()  # nothing written


@pytest.mark.parametrize("box", BAD_BOXES[:3])
def test_batch_refuses_a_bad_box_in_one_line_with_exit_2(tmp_path: Path, box: str) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{PATTERN}|{MODEL}\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["batch", str(pairs), "-r", "pattern-transfer", "-o", str(tmp_path / "out")]
        + ["--backend", "local", "--subject-box", box],
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "subject-box" in lines[0]
    assert not (tmp_path / "out").exists()


def test_no_subject_is_said_and_the_checks_are_not_measured(tmp_path: Path) -> None:
    import json

    from tests.paths import SHARED_IMAGES

    painting = str(SHARED_IMAGES / "starry_night.jpg")
    args = ["run", PATTERN, painting, "-r", "pattern-transfer", "--backend", "local"]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "warning: no subject found on the target" in result.output
    assert "recipe checks not measured" in result.output
    (sidecar,) = [p for p in (tmp_path / "a").glob("*.json")]
    data = json.loads(sidecar.read_text())
    assert data["backend_notes"]["subject"]["found"] is False
    assert data["backend_notes"]["placed_by"] == "image"
    assert data["checks"]["pattern_width_fraction"]["pass"] is None
    assert data["passed"] is False
    strict = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "b"), "--strict"])
    assert strict.exit_code == 1
    # Given by hand, the same painting's "chest" is measured, and the preview uses it.
    boxed = CliRunner().invoke(
        cli, [*args, "-o", str(tmp_path / "c"), "--subject-box", "0.2,0.3,0.8,0.9", "--json"]
    )
    assert boxed.exit_code == 0, boxed.output
    out = json.loads(boxed.stdout)
    assert out["compare"]["subject"]["method"] == "given"
    assert out["backend_notes"]["placed_by"] == "chest"
    assert out["checks"]["pattern_width_fraction"]["pass"] is not None
