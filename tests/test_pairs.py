"""PAIRS files: CSV, JSON Lines and left|right text, with per-row errors and line numbers."""

from __future__ import annotations

import csv
import io
import json
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxcompose.errors import PairsError
from fluxcompose.pairs import read_pairs


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_left_right_with_every_optional_column(tmp_path: Path) -> None:
    p = write(
        tmp_path / "pairs.csv",
        "id,left,right,prompt,seed,aspect_ratio,var.size,var.placement\n"
        "job-1,a.png,sub/b.jpg,make it blue,7,16:9,1/2,upper left\n"
        ",https://example.com/x.png,/abs/y.png,,,,,\n",
    )
    pairs = read_pairs(p)
    assert pairs.format == "csv" and pairs.errors == []
    first, second = pairs.rows
    assert first.line == 2 and second.line == 3
    assert first.id == "job-1"
    assert first.sources == (str(tmp_path / "a.png"), str(tmp_path / "sub" / "b.jpg"))
    assert first.prompt == "make it blue" and first.seed == 7 and first.aspect_ratio == "16:9"
    assert dict(first.variables) == {"size": "1/2", "placement": "upper left"}
    # Empty cells mean "the recipe's default"; URLs and absolute paths pass through.
    assert second.sources == ("https://example.com/x.png", "/abs/y.png")
    assert (second.id, second.prompt, second.seed, second.aspect_ratio) == (None, None, None, None)
    assert dict(second.variables) == {}


def test_relative_paths_resolve_against_the_pairs_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "pairs.txt", "l.png|../r.png\n")
    monkeypatch.chdir(tmp_path)
    (row,) = read_pairs(Path("data/pairs.txt")).rows
    assert row.sources == (str(tmp_path / "data" / "l.png"), str(tmp_path / "data" / "../r.png"))


def test_csv_image_columns_allow_fewer_images_but_no_gaps(tmp_path: Path) -> None:
    p = write(
        tmp_path / "p.csv",
        "image1,image2,image3\na.png,b.png,c.png\na.png,b.png,\na.png,,c.png\n",
    )
    pairs = read_pairs(p)
    assert [len(r.sources) for r in pairs.rows] == [3, 2]
    assert [(e.line, "image 2" in e.message) for e in pairs.errors] == [(4, True)]


def test_csv_bad_rows_are_reported_with_their_line_and_do_not_stop_the_others(
    tmp_path: Path,
) -> None:
    p = write(
        tmp_path / "p.csv",
        "left,right,seed,aspect_ratio\n"
        "a.png,b.png,1,\n"  # 2 ok
        "a.png,,,\n"  # 3 right missing
        "a.png,b.png,x,\n"  # 4 bad seed
        "a.png,b.png,,9:1\n"  # 5 ratio out of range
        "\n"  # 6 blank: skipped
        "a.png,b.png,,,extra\n"  # 7 too many cells
        "c.png,d.png,2,match:right\n",  # 8 ok
    )
    pairs = read_pairs(p)
    assert [r.line for r in pairs.rows] == [2, 8]
    errors = {e.line: e.message for e in pairs.errors}
    assert set(errors) == {3, 4, 5, 7}
    assert "right" in errors[3] and "seed" in errors[4] and "3:7" in errors[5]
    assert str(pairs.errors[0]).startswith("line 3:")


def test_text_to_image_rows(tmp_path: Path) -> None:
    p = write(tmp_path / "p.csv", "prompt,aspect_ratio\na red fox,16:9\na blue bird,\n")
    rows = read_pairs(p).rows
    assert [(r.sources, r.prompt, r.aspect_ratio) for r in rows] == [
        ((), "a red fox", "16:9"),
        ((), "a blue bird", None),
    ]


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("id,prompt_text\n", "left,right"),
        ("left,seed\n", "both 'left' and 'right'"),
        ("image1,image3\n", "without gaps"),
        ("left,right,image1\n", "not both"),
        ("left,right,colour\n", "unknown column 'colour'"),
    ],
)
def test_bad_header_is_a_pairs_error(tmp_path: Path, header: str, needle: str) -> None:
    p = write(tmp_path / "p.csv", header + "a,b\n")
    with pytest.raises(PairsError, match=needle.replace("(", r"\(")):
        read_pairs(p)


def test_unusable_files_are_pairs_errors(tmp_path: Path) -> None:
    with pytest.raises(PairsError, match="not found"):
        read_pairs(tmp_path / "missing.csv")
    with pytest.raises(PairsError, match="folder"):
        read_pairs(tmp_path)
    with pytest.raises(PairsError, match="no rows|empty"):
        read_pairs(write(tmp_path / "empty.txt", "# nothing here\n\n"))
    (tmp_path / "bin.csv").write_bytes(b"left,right\n\xff\xfe\x00bad")
    with pytest.raises(PairsError, match="UTF-8"):
        read_pairs(tmp_path / "bin.csv")
    assert PairsError("x").exit_code == 2


def test_jsonl_same_keys_and_bad_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"left": "a.png", "right": "b.png", "seed": 3, "var.size": "1/3"}),
        "",
        "{not json",
        json.dumps({"image1": "a.png", "image2": "b.png", "vars": {"placement": "top"}}),
        json.dumps({"left": "a.png"}),
        json.dumps(["a", "b"]),
        json.dumps({"prompt": "a cat", "aspect_ratio": "1:1", "id": "cat"}),
    ]
    pairs = read_pairs(write(tmp_path / "p.jsonl", "\n".join(lines) + "\n"))
    assert [r.line for r in pairs.rows] == [1, 4, 7]
    assert pairs.rows[0].seed == 3 and dict(pairs.rows[0].variables) == {"size": "1/3"}
    assert dict(pairs.rows[1].variables) == {"placement": "top"}
    assert pairs.rows[2].sources == () and pairs.rows[2].id == "cat"
    assert sorted(e.line for e in pairs.errors) == [3, 5, 6]


def test_text_format_skips_comments_and_reports_bad_lines(tmp_path: Path) -> None:
    text = "# vendor script pairs\n\na.png|b.png\nonly-one.png\n  c.png | d.png  \nftp://x/y.png|b.png\n"
    pairs = read_pairs(write(tmp_path / "pairs.txt", text))
    assert pairs.format == "text"
    assert [(r.line, r.sources) for r in pairs.rows] == [
        (3, (str(tmp_path / "a.png"), str(tmp_path / "b.png"))),
        (5, (str(tmp_path / "c.png"), str(tmp_path / "d.png"))),
    ]
    errors = {e.line: e.message for e in pairs.errors}
    assert set(errors) == {4, 6} and "http" in errors[6]


def test_format_is_sniffed_when_the_extension_says_nothing(tmp_path: Path) -> None:
    assert read_pairs(write(tmp_path / "a", "x.png|y.png\n")).format == "text"
    assert read_pairs(write(tmp_path / "b", '{"left": "x", "right": "y"}\n')).format == "jsonl"
    assert read_pairs(write(tmp_path / "c", "left,right\nx,y\n")).format == "csv"


_name = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)
_prompt = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=40
)


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(_name, _name, _prompt, st.booleans()), min_size=1, max_size=8))
def test_csv_round_trip_keeps_cells_and_start_lines(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, str, bool]]
) -> None:
    """Prompts with commas, quotes and newlines survive; each row keeps the line it starts on."""
    folder = tmp_path_factory.mktemp("csv")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["left", "right", "prompt"])
    expected_lines = []
    line = 2
    for left, right, prompt, blank_before in rows:
        if blank_before:
            buf.write("\n")
            line += 1
        expected_lines.append(line)
        writer.writerow([f"{left}.png", f"{right}.png", prompt])
        line += 1 + prompt.count("\n")
    pairs = read_pairs(write(folder / "p.csv", buf.getvalue()))
    assert pairs.errors == []
    assert [r.line for r in pairs.rows] == expected_lines
    for row, (left, right, prompt, _) in zip(pairs.rows, rows, strict=True):
        assert row.sources == (str(folder / f"{left}.png"), str(folder / f"{right}.png"))
        assert row.prompt == (prompt.strip() or None)


@settings(max_examples=40, deadline=None)
@given(
    lines=st.lists(
        st.one_of(
            st.tuples(st.just("pair"), _name, _name),
            st.tuples(st.just("comment"), _name, _name),
            st.tuples(st.just("blank"), _name, _name),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_text_round_trip_line_numbers(
    tmp_path_factory: pytest.TempPathFactory, lines: list[tuple[str, str, str]]
) -> None:
    folder = tmp_path_factory.mktemp("txt")
    out, expected = [], []
    for number, (kind, a, b) in enumerate(lines, start=1):
        if kind == "pair":
            out.append(f"{a}.jpg|{b}.jpg")
            expected.append((number, (str(folder / f"{a}.jpg"), str(folder / f"{b}.jpg"))))
        elif kind == "comment":
            out.append(f"# {a}|{b}")
        else:
            out.append("   ")
    if not expected:
        out.append("z.jpg|w.jpg")
        expected.append((len(out), (str(folder / "z.jpg"), str(folder / "w.jpg"))))
    pairs = read_pairs(write(folder / "pairs.txt", "\n".join(out) + "\n"))
    assert [(r.line, r.sources) for r in pairs.rows] == expected
