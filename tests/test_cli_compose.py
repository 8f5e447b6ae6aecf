"""The ``size`` and ``compose`` commands, through click's CliRunner and as a real subprocess."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose.cli import cli
from fluxcompose.geometry import size_for
from tests.paths import SHARED_IMAGES

IMAGES = SHARED_IMAGES
MP = 1024 * 1024
MAIN = [sys.executable, "-c", "from fluxcompose.cli import main; main()"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_error_line(stderr: str) -> str:
    """The error is exactly one line on stderr, with no traceback; return it."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("fluxcompose: error: ")
    return lines[0]


def psnr(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    assert x.shape == y.shape, (x.shape, y.shape)
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def gradient(w: int, h: int) -> Image.Image:
    """A smooth two-way colour gradient: any squashing or flipping changes its pixels."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    arr = np.stack([255 * xx / max(1, w - 1), 255 * yy / max(1, h - 1), 128 + 0 * xx], axis=-1)
    return Image.fromarray(arr.round().astype(np.uint8))


def check_canvas(out: Path, layout: dict[str, Any], megapixels: float = 1.0) -> Image.Image:
    """The written canvas agrees with its layout and with the contract's bounds."""
    img = Image.open(out)
    img.load()
    w, h = layout["width"], layout["height"]
    assert img.size == (w, h)
    assert w % 16 == 0 and h % 16 == 0
    assert 3 / 7 <= w / h <= 7 / 3
    assert abs(w * h - megapixels * MP) <= 0.05 * megapixels * MP
    a, b = (int(x) for x in layout["aspect_ratio"].split(":"))
    assert a * h == b * w
    for c in layout["cells"]:
        assert min(c["x"], c["y"]) >= 0 and c["x"] + c["w"] <= w and c["y"] + c["h"] <= h
    return img.convert("RGB")


def cell_image(canvas: Image.Image, c: dict[str, Any]) -> Image.Image:
    return canvas.crop((c["x"], c["y"], c["x"] + c["w"], c["y"] + c["h"]))


# --------------------------------------------------------------------------- size


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["16:9"], "1392x784"),
        (["1:1"], "1024x1024"),
        (["16x9"], "1392x784"),
        (["16:9", "--bucket"], "1392x752"),
        (["1:1", "--bucket"], "1024x1024"),
        (["3:7", "--bucket"], "672x1568"),
    ],
)
def test_size_text(args: list[str], expected: str) -> None:
    result = run("size", *args)
    assert result.exit_code == 0
    assert result.stdout == expected + "\n"
    assert result.stderr == ""


def test_size_json() -> None:
    result = run("size", "16:9", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert set(data) == {"ratio", "width", "height", "megapixels"}
    assert (data["width"], data["height"]) == (1392, 784)
    assert data["ratio"] == "16:9"
    assert abs(data["megapixels"] - 1.0) <= 0.05
    bucket = json.loads(run("size", "16:9", "--bucket", "--json").stdout)
    assert (bucket["width"], bucket["height"]) == (1392, 752)


@settings(max_examples=25, deadline=None)
@given(
    w=st.integers(3, 70),
    h=st.integers(3, 70),
    mp=st.sampled_from(["0.5", "1", "2"]),
    multiple=st.sampled_from(["8", "16", "64"]),
)
def test_size_matches_size_for(w: int, h: int, mp: str, multiple: str) -> None:
    result = run("size", f"{w}:{h}", "--megapixels", mp, "--multiple", multiple)
    if not 3 / 7 <= w / h <= 7 / 3:
        assert result.exit_code == 2
        assert "3:7 to 7:3" in one_error_line(result.stderr)
        return
    try:
        expected = size_for((w, h), float(mp), int(multiple))
    except ValueError:
        assert result.exit_code == 2
        one_error_line(result.stderr)
        return
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"{expected[0]}x{expected[1]}"


@pytest.mark.parametrize(
    "args",
    [
        ["abc"],
        ["0:1"],
        ["1:0"],
        ["--", "-1:2"],
        ["1:9"],
        ["9:1"],
        ["7.1:3"],
        ["16:9:1"],
        [""],
    ],
)
def test_size_bad_ratio_names_the_range(args: list[str]) -> None:
    result = run("size", *args)
    assert result.exit_code == 2
    assert "3:7 to 7:3" in one_error_line(result.stderr)
    assert result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["-1:2"],  # looks like an option to click: still one line and exit 2
        [],
        ["16:9", "--megapixels", "0"],
        ["16:9", "--megapixels", "-1"],
        ["16:9", "--megapixels", "nan"],
        ["16:9", "--megapixels", "0.0001"],
        ["16:9", "--megapixels", "lots"],
        ["16:9", "--multiple", "0"],
        ["16:9", "--nonsense"],
    ],
)
def test_size_bad_usage(args: list[str]) -> None:
    result = run("size", *args)
    assert result.exit_code == 2
    one_error_line(result.stderr)
    assert result.stdout == ""


def test_size_subprocess() -> None:
    ok = subprocess.run(
        [*MAIN, "size", "16:9", "--json"], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["width"] == 1392
    bad = subprocess.run([*MAIN, "size", "7.1:3"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stdout == ""
    assert "3:7 to 7:3" in one_error_line(bad.stderr)


@pytest.mark.skipif(shutil.which("fluxcompose") is None, reason="console script not installed")
def test_console_script() -> None:
    exe = shutil.which("fluxcompose")
    assert exe is not None
    ok = subprocess.run([exe, "size", "1:1"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout == "1024x1024\n"
    bad = subprocess.run([exe, "size", "abc"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    one_error_line(bad.stderr)


# --------------------------------------------------------------------------- compose: happy path


@pytest.fixture(scope="module")
def pics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pics")
    out: dict[str, Path] = {}
    rng = np.random.default_rng(0)
    out["a"] = folder / "a.png"
    gradient(400, 300).save(out["a"])
    out["b"] = folder / "b.png"
    gradient(240, 360).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(out["b"])
    # Extreme but valid inputs.
    out["1x1"] = folder / "one.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(out["1x1"])
    out["1x10000"] = folder / "thin.png"
    gradient(1, 10000).save(out["1x10000"])
    out["10000x1"] = folder / "flat.png"
    gradient(10000, 1).save(out["10000x1"])
    out["cmyk"] = folder / "cmyk.jpg"
    gradient(200, 150).convert("CMYK").save(out["cmyk"], quality=95)
    g16 = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (64, 1))
    out["16bit"] = folder / "g16.png"
    cv2.imwrite(str(out["16bit"]), g16)
    pal = Image.new("P", (60, 40))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putdata([0 if x < 30 else 1 for _ in range(40) for x in range(60)])
    out["palette"] = folder / "pal.png"
    pal.save(out["palette"], transparency=1)
    # Bad inputs.
    out["zero"] = folder / "zero.png"
    out["zero"].write_bytes(b"")
    out["text"] = folder / "notes.jpg"
    out["text"].write_text("not a picture\n")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(buf, "JPEG")
    out["trunc"] = folder / "trunc.jpg"
    out["trunc"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return out


def compose_ok(
    tmp_path: Path, *args: str, name: str = "out.png"
) -> tuple[Result, Path, dict[str, Any]]:
    out = tmp_path / name
    result = run("compose", *args, "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    layout_file = tmp_path / (name + ".layout.json")
    assert out.is_file() and layout_file.is_file()
    layout = json.loads(layout_file.read_text())
    assert json.loads(result.stdout) == layout  # --json prints the same layout
    return result, out, layout


def test_compose_writes_canvas_and_layout(tmp_path: Path, pics: dict[str, Path]) -> None:
    out = tmp_path / "canvas.png"
    result = run("compose", str(pics["a"]), str(pics["b"]), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # the layout goes to stdout only with --json
    assert sorted(os.listdir(tmp_path)) == ["canvas.png", "canvas.png.layout.json"]
    layout = json.loads((tmp_path / "canvas.png.layout.json").read_text())
    canvas = check_canvas(out, layout)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert layout["layout"] == "horizontal"
    assert [c["source"] for c in layout["cells"]] == [str(pics["a"]), str(pics["b"])]
    for c, src in zip(layout["cells"], ("a", "b"), strict=True):
        ref = (
            Image.open(pics[src]).convert("RGB").resize((c["w"], c["h"]), Image.Resampling.LANCZOS)
        )
        assert psnr(cell_image(canvas, c), ref) >= 30


@pytest.mark.parametrize("name", ["out.jpg", "out.jpeg", "OUT.JPG"])
def test_compose_jpeg_by_extension(tmp_path: Path, pics: dict[str, Path], name: str) -> None:
    _, out, layout = compose_ok(tmp_path, str(pics["a"]), str(pics["b"]), name=name)
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"
    check_canvas(out, layout)
    assert sorted(os.listdir(tmp_path)) == sorted([name, name + ".layout.json"])


def test_compose_options(tmp_path: Path, pics: dict[str, Path]) -> None:
    _, out, layout = compose_ok(
        tmp_path,
        str(pics["a"]),
        str(pics["b"]),
        "--layout", "vertical",
        "--gutter", "16",
        "--gutter-color", "#ff0000",
        "--background", "black",
        "--labels",
        "--outline",
        "--megapixels", "0.5",
    )  # fmt: skip
    assert layout["layout"] == "vertical" and layout["gutter"] == 16
    assert layout["background"] == "#000000"
    canvas = np.asarray(check_canvas(out, layout, 0.5))
    a, b = layout["cells"]
    band = canvas[a["y"] + a["h"] : b["y"], a["x"] : a["x"] + a["w"]]
    assert band.shape[0] >= 16 and (band == (255, 0, 0)).all()
    assert (canvas[a["y"] + a["h"] // 2, a["x"] + a["w"] - 1] == (255, 255, 255)).all()  # outline


def test_compose_label_texts(tmp_path: Path, pics: dict[str, Path]) -> None:
    plain_out = tmp_path / "plain.png"
    assert run("compose", str(pics["a"]), str(pics["b"]), "-o", str(plain_out)).exit_code == 0
    _, out, layout = compose_ok(
        tmp_path, str(pics["a"]), str(pics["b"]), "--label", "pattern", "--label", "target"
    )
    diff = (np.asarray(Image.open(out)) != np.asarray(Image.open(plain_out))).any(axis=-1)
    for c in layout["cells"]:
        region = diff[c["y"] : c["y"] + c["h"], c["x"] : c["x"] + c["w"]]
        ys, xs = np.nonzero(region)
        limit = 0.10 * min(c["w"], c["h"])
        assert ys.size and ys.max() - ys.min() + 1 <= limit
        assert ys.min() <= limit / 2 and xs.min() <= limit / 2


def test_compose_no_upscale(tmp_path: Path) -> None:
    for i in range(2):
        Image.new("RGB", (128, 128), (i * 100, 50, 50)).save(tmp_path / f"s{i}.png")
    out = tmp_path / "o" / "c.png"
    result = run(
        "compose",
        str(tmp_path / "s0.png"),
        str(tmp_path / "s1.png"),
        "-o",
        str(out),
        "--no-upscale",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    layout = json.loads(result.stdout)
    assert (layout["width"], layout["height"]) == (256, 128)
    assert [(c["w"], c["h"]) for c in layout["cells"]] == [(128, 128), (128, 128)]


def test_compose_subprocess(tmp_path: Path, pics: dict[str, Path]) -> None:
    out = tmp_path / "c.jpg"
    ok = subprocess.run(
        [*MAIN, "compose", str(pics["a"]), str(pics["b"]), "-o", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    layout = json.loads(ok.stdout)
    assert layout == json.loads((tmp_path / "c.jpg.layout.json").read_text())
    check_canvas(out, layout)
    bad = subprocess.run(
        [*MAIN, "compose", str(pics["a"]), str(pics["trunc"]), "-o", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    one_error_line(bad.stderr)
    assert sorted(os.listdir(tmp_path)) == ["c.jpg", "c.jpg.layout.json"]


# --------------------------------------------------------------------------- compose: extremes


def test_extreme_1x1(tmp_path: Path, pics: dict[str, Path]) -> None:
    _, out, layout = compose_ok(tmp_path, str(pics["1x1"]), str(pics["a"]))
    canvas = check_canvas(out, layout)
    c = layout["cells"][0]
    assert (np.asarray(cell_image(canvas, c)) == (10, 20, 30)).all()


@pytest.mark.parametrize("kind", ["1x10000", "10000x1"])
@pytest.mark.parametrize("layout_name", ["auto", "horizontal", "vertical", "grid"])
def test_extreme_thin(tmp_path: Path, pics: dict[str, Path], kind: str, layout_name: str) -> None:
    _, out, layout = compose_ok(tmp_path, str(pics[kind]), str(pics["a"]), "--layout", layout_name)
    canvas = check_canvas(out, layout)
    for c, src in zip(layout["cells"], (kind, "a"), strict=True):
        sw, sh = Image.open(pics[src]).size
        assert (
            abs(c["w"] - c["h"] * sw / sh) <= 1
            or abs(c["h"] - c["w"] * sh / sw) <= 1
            or 1 in (c["w"], c["h"])
        )
        if min(c["w"], c["h"]) > 1:
            ref = (
                Image.open(pics[src])
                .convert("RGB")
                .resize((c["w"], c["h"]), Image.Resampling.LANCZOS)
            )
            assert psnr(cell_image(canvas, c), ref) >= 30
        elif src == kind and max(c["w"], c["h"]) > 1:  # a 1-px line: its gradient survives
            got = np.asarray(cell_image(canvas, c), dtype=np.float64).reshape(-1, 3)
            ramp = np.linspace(0, 255, len(got))
            channel = 1 if kind == "1x10000" else 0
            assert np.abs(got[:, channel] - ramp).max() <= 8


def test_extreme_cmyk(tmp_path: Path, pics: dict[str, Path]) -> None:
    _, out, layout = compose_ok(tmp_path, str(pics["cmyk"]), str(pics["a"]))
    canvas = check_canvas(out, layout)
    c = layout["cells"][0]
    assert (
        psnr(
            cell_image(canvas, c),
            gradient(200, 150).resize((c["w"], c["h"]), Image.Resampling.LANCZOS),
        )
        >= 30
    )


def test_extreme_16bit(tmp_path: Path, pics: dict[str, Path]) -> None:
    _, out, layout = compose_ok(tmp_path, str(pics["16bit"]), str(pics["a"]))
    canvas = check_canvas(out, layout)
    c = layout["cells"][0]
    row = np.asarray(cell_image(canvas, c), dtype=np.float64)[c["h"] // 2, :, 0]
    ramp = np.linspace(0, 255, len(row))
    assert np.abs(row - ramp).max() <= 6  # a full 0..255 ramp, not clipped to white


def test_extreme_palette_transparency(tmp_path: Path, pics: dict[str, Path]) -> None:
    _, out, layout = compose_ok(
        tmp_path, str(pics["palette"]), str(pics["a"]), "--background", "#00ff00"
    )
    canvas = np.asarray(check_canvas(out, layout))
    c = layout["cells"][0]
    cell = canvas[c["y"] : c["y"] + c["h"], c["x"] : c["x"] + c["w"]]
    q = c["w"] // 4
    assert (cell[:, :q] == (255, 0, 0)).all()
    assert (cell[:, -q:] == (0, 255, 0)).all()  # the transparent half shows the background


def test_extreme_animated_gif(tmp_path: Path) -> None:
    _, out, layout = compose_ok(
        tmp_path, str(IMAGES / "dispose_bgnd_transparency.gif"), str(IMAGES / "flower.jpg")
    )
    check_canvas(out, layout)
    assert layout["cells"][0]["source"].endswith(".gif")


@pytest.mark.parametrize("orientation", range(2, 9))
def test_extreme_exif(tmp_path: Path, orientation: int) -> None:
    _, out, layout = compose_ok(
        tmp_path, str(IMAGES / f"hopper_orientation_{orientation}.jpg"), str(IMAGES / "flower.jpg")
    )
    canvas = check_canvas(out, layout)
    c = layout["cells"][0]
    assert c["orientation_applied"] == orientation
    ref = (
        Image.open(IMAGES / "hopper.jpg")
        .convert("RGB")
        .resize((c["w"], c["h"]), Image.Resampling.LANCZOS)
    )
    assert psnr(cell_image(canvas, c), ref) >= 28


# --------------------------------------------------------------------------- compose: bad input


class _Server:
    """Loopback server: an image, a 404, a web page, and bodies over the 50 MB download cap."""

    def __init__(self, image: bytes) -> None:
        self.stop = threading.Event()
        stop = self.stop

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                # The client may hang up once it has seen enough.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._route()

            def _route(self) -> None:
                if self.path == "/img.png":
                    body, ctype = image, "image/png"
                elif self.path == "/page.png":
                    body, ctype = b"<html>no</html>", "text/html"
                elif self.path == "/huge-claimed.png":
                    self.send_response(200)
                    self.send_header("Content-Length", str(60 * 1024 * 1024))
                    self.end_headers()
                    self.wfile.write(image)
                    return
                elif self.path == "/cut-short.png":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(image) + 5000))
                    self.end_headers()
                    self.wfile.write(image)
                    return
                elif self.path == "/huge-stream.png":
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(image)
                    chunk = b"\0" * (1 << 20)
                    for _ in range(60):  # 60 MB at most, then stop
                        if stop.is_set():
                            return
                        self.wfile.write(chunk)
                    return
                else:
                    body, ctype = b"missing", "text/plain"
                    self.send_response(404)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture(scope="module")
def server(pics: dict[str, Path]) -> Iterator[_Server]:
    srv = _Server(pics["a"].read_bytes())
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(5)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_compose_from_url(tmp_path: Path, pics: dict[str, Path], server: _Server) -> None:
    _, out, layout = compose_ok(tmp_path, f"{server.base}/img.png", str(pics["b"]))
    canvas = check_canvas(out, layout)
    c = layout["cells"][0]
    assert c["source"] == f"{server.base}/img.png"
    ref = Image.open(pics["a"]).convert("RGB").resize((c["w"], c["h"]), Image.Resampling.LANCZOS)
    assert psnr(cell_image(canvas, c), ref) >= 30


BAD_CASES = [
    "missing",
    "zero",
    "text",
    "trunc",
    "bomb",
    "broken",
    "unreachable",
    "url-404",
    "url-huge-claimed",
    "url-huge-stream",
    "url-not-image",
    "url-cut-short",
    "ftp-url",
    "none",
    "ten",
    "bad-layout",
    "bad-gutter",
    "bad-colour",
    "bad-megapixels",
    "huge-megapixels",
    "bad-extension",
]


def _bad_args(case: str, pics: dict[str, Path], server: _Server) -> list[str]:
    good = str(pics["a"])
    return {
        "missing": [good, str(pics["a"].parent / "nope.png")],
        "zero": [good, str(pics["zero"])],
        "text": [str(pics["text"]), good],
        "trunc": [good, str(pics["trunc"])],
        "bomb": [good, str(IMAGES / "decompression_bomb.gif")],
        "broken": [str(IMAGES / "broken.png"), good],
        "unreachable": [good, f"http://127.0.0.1:{closed_port()}/x.png"],
        "url-404": [good, f"{server.base}/nothing.png"],
        "url-huge-claimed": [good, f"{server.base}/huge-claimed.png"],
        "url-huge-stream": [good, f"{server.base}/huge-stream.png"],
        "url-not-image": [good, f"{server.base}/page.png"],
        "url-cut-short": [good, f"{server.base}/cut-short.png"],
        "ftp-url": [good, "ftp://127.0.0.1/x.png"],
        "none": [],
        "ten": [good] * 10,
        "bad-layout": [good, good, "--layout", "diagonal"],
        "bad-gutter": [good, good, "--gutter", "-3"],
        "bad-colour": [good, good, "--background", "blurple"],
        "bad-megapixels": [good, good, "--megapixels", "0"],
        "huge-megapixels": [good, good, "--megapixels", "1000"],
        "bad-extension": [good, good],
    }[case]


@pytest.mark.parametrize("case", BAD_CASES)
def test_compose_bad_input(
    tmp_path: Path, pics: dict[str, Path], server: _Server, case: str
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    name = "canvas.gif" if case == "bad-extension" else "canvas.png"
    result = run("compose", *_bad_args(case, pics, server), "-o", str(folder / name))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    line = one_error_line(result.stderr)
    assert result.stdout == ""
    assert os.listdir(folder) == []  # no canvas, no layout, no temporary files
    if case in ("bomb",):
        assert "limit" in line
    if case.startswith("url-huge"):
        assert "cap" in line


def test_compose_bad_input_creates_no_folder(tmp_path: Path, pics: dict[str, Path]) -> None:
    out = tmp_path / "new" / "sub" / "canvas.png"
    result = run("compose", str(pics["a"]), str(pics["zero"]), "-o", str(out))
    assert result.exit_code == 2
    one_error_line(result.stderr)
    assert os.listdir(tmp_path) == []
