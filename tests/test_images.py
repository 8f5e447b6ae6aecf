"""Image loading and saving: real-world files, synthetic modes, limits, URLs and atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import os
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from fluxcompose.errors import ImageError, InputError
from fluxcompose.images import (
    AtomicWriter,
    atomic_path,
    load_image,
    save_image_atomic,
    write_bytes_atomic,
)
from tests.paths import SHARED_IMAGES
from tests.synth import photo_like

IMAGES = SHARED_IMAGES
TRANSPOSES = list(Image.Transpose)


def psnr(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two 8-bit images of one size."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    assert x.shape == y.shape, (x.shape, y.shape)
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def textured(w: int, h: int, seed: int = 0) -> Image.Image:
    """A photo-like RGB picture: smooth gradients, blobs and mildly blurred noise, no symmetry."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack(
        [
            128 + 90 * np.sin(xx / (w / 5.3) + 0.7) * np.cos(yy / (h / 3.1)),
            255 * xx / max(1, w - 1),
            255 * yy / max(1, h - 1),
        ],
        axis=-1,
    )
    # Noise drawn at a quarter of the size and enlarged: detail a few pixels across, cheaply.
    small = rng.normal(0, 40, (max(1, h // 4), max(1, w // 4), 3))
    noise = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def hopper() -> Image.Image:
    return Image.open(IMAGES / "hopper.jpg").convert("RGB")


# --------------------------------------------------------------------------- real-world files


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_upright(orientation: int) -> None:
    loaded = load_image(IMAGES / f"hopper_orientation_{orientation}.jpg")
    assert loaded.orientation == orientation
    assert loaded.image.mode == "RGB" and loaded.image.size == (128, 128)
    ref = hopper()
    assert psnr(loaded.image, ref) >= 30
    # The check can fail: every wrong orientation of the same photo is far below it.
    for t in TRANSPOSES:
        assert psnr(loaded.image, ref.transpose(t)) < 20


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_non_square(tmp_path: Path, orientation: int) -> None:
    # The stored pixels are the upright picture with the inverse transform applied.
    upright = textured(96, 48, seed=orientation)
    inverse = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    stored = upright if inverse is None else upright.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    stored.save(path, exif=exif)
    loaded = load_image(path)
    assert loaded.orientation == orientation
    assert loaded.original_size == stored.size
    assert np.array_equal(np.asarray(loaded.image), np.asarray(upright))
    # The same holds when decoding straight to a target size (JPEG too).
    jpg = tmp_path / f"o{orientation}.jpg"
    stored.save(jpg, quality=98, subsampling=0, exif=exif)
    small = load_image(jpg, draft_size=(48, 24))
    assert small.image.size == (48, 24)
    assert psnr(small.image, upright.resize((48, 24), Image.Resampling.LANCZOS)) >= 30


def test_imagemagick_png_orientation() -> None:
    path = IMAGES / "exif_imagemagick_orientation.png"
    loaded = load_image(path)
    with Image.open(path) as raw:
        assert raw.getexif().get(0x0112) == 3
        stored = raw.convert("RGB")
        expected = ImageOps.exif_transpose(raw).convert("RGB")
    assert loaded.orientation == 3
    assert np.array_equal(np.asarray(loaded.image), np.asarray(expected))
    assert np.array_equal(
        np.asarray(loaded.image), np.asarray(stored.transpose(Image.Transpose.ROTATE_180))
    )
    assert not np.array_equal(np.asarray(loaded.image), np.asarray(stored))


def test_mpo_first_frame() -> None:
    path = IMAGES / "frozenpond.mpo"
    loaded = load_image(path)
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) == 2
        first = im.convert("RGB")
        im.seek(1)
        second = im.convert("RGB")
    assert loaded.image.size == first.size
    assert np.array_equal(np.asarray(loaded.image), np.asarray(first))
    assert psnr(loaded.image, second) < 20


def _flatten(rgba: np.ndarray, bg: tuple[int, int, int]) -> np.ndarray:
    """Independent alpha compositing onto a flat colour, in float, rounded."""
    a = rgba[..., 3:4].astype(np.float64) / 255
    out = rgba[..., :3] * a + np.array(bg, dtype=np.float64) * (1 - a)
    return np.rint(out)


@pytest.mark.parametrize("bg", [(255, 255, 255), (255, 0, 0), (10, 200, 30)])
def test_animated_gif_first_frame_flattened(bg: tuple[int, int, int]) -> None:
    path = IMAGES / "dispose_bgnd_transparency.gif"
    loaded = load_image(path, background=bg)
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) > 1
        im.seek(0)
        rgba = np.asarray(im.convert("RGBA"))
    transparent = rgba[..., 3] == 0
    assert transparent.any() and (~transparent).any()
    got = np.asarray(loaded.image)
    assert loaded.image.mode == "RGB" and got.shape[:2] == rgba.shape[:2]
    assert (got[transparent] == np.array(bg, dtype=np.uint8)).all()
    assert np.array_equal(got[~transparent], rgba[~transparent][:, :3])


def test_animated_gif_background_by_name() -> None:
    a = np.asarray(load_image(IMAGES / "dispose_bgnd_transparency.gif", background="black").image)
    b = np.asarray(load_image(IMAGES / "dispose_bgnd_transparency.gif", background="#000000").image)
    assert np.array_equal(a, b)


def test_16bit_qtables_jpeg() -> None:
    loaded = load_image(IMAGES / "hopper_16bit_qtables.jpg")
    with Image.open(IMAGES / "hopper_16bit_qtables.jpg") as im:
        expected = im.convert("RGB")
    assert np.array_equal(np.asarray(loaded.image), np.asarray(expected))
    assert psnr(loaded.image, hopper()) >= 20  # a lower-quality copy of the photo


def test_decompression_bomb_refused() -> None:
    with pytest.raises(ImageError) as info:
        load_image(IMAGES / "decompression_bomb.gif")
    msg = str(info.value)
    assert "limit" in msg and "100 MP" in msg and "\n" not in msg


def test_broken_png_refused() -> None:
    with pytest.raises(ImageError) as info:
        load_image(IMAGES / "broken.png")
    assert "broken.png" in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------------- synthetic modes


def test_cmyk_jpeg(tmp_path: Path) -> None:
    rgb = textured(120, 80, seed=3)
    path = tmp_path / "cmyk.jpg"
    rgb.convert("CMYK").save(path, quality=95)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
    loaded = load_image(path)
    assert loaded.image.mode == "RGB"
    assert psnr(loaded.image, rgb) >= 30  # catches inverted (Adobe) CMYK


def test_16bit_gray_png_maps_to_8bit(tmp_path: Path) -> None:
    values = np.linspace(0, 65535, 256 * 4).round().astype(np.uint16).reshape(4, 256)
    path = tmp_path / "g16.png"
    assert cv2.imwrite(str(path), values)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    got = np.asarray(load_image(path).image).astype(np.int64)
    expected = np.rint(values / 257.0)
    assert got.shape == (4, 256, 3)
    assert np.abs(got[..., 0] - expected).max() <= 1
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()
    assert got.min() == 0 and got.max() == 255
    assert np.count_nonzero(got[..., 0] == 255) < 10  # not clipped to white


def test_16bit_dark_gray_png_stays_dark(tmp_path: Path) -> None:
    # Every value <= 255 out of 65535: the picture is nearly black, not a full 8-bit range.
    values = np.arange(256, dtype=np.uint16).reshape(16, 16)
    path = tmp_path / "dark16.png"
    assert cv2.imwrite(str(path), values)
    got = np.asarray(load_image(path).image)
    assert got.max() <= 1


def test_16bit_rgb_png(tmp_path: Path) -> None:
    rgb8 = np.asarray(textured(64, 32, seed=5))
    rgb16 = rgb8.astype(np.uint16) * 257
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb16[..., ::-1])  # OpenCV writes BGR
    got = np.asarray(load_image(path).image).astype(np.int64)
    assert np.abs(got - rgb8).max() <= 1


def test_palette_with_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (20, 10))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    idx = np.zeros((10, 20), dtype=np.uint8)
    idx[:, 5:10] = 1
    idx[:, 10:] = 2
    pal.putdata(idx.flatten().tolist())
    path = tmp_path / "pal.png"
    pal.save(path, transparency=1)
    got = np.asarray(load_image(path, background=(7, 8, 9)).image)
    assert (got[:, :5] == (255, 0, 0)).all()
    assert (got[:, 5:10] == (7, 8, 9)).all()
    assert (got[:, 10:] == (0, 0, 255)).all()


def test_la_flattened(tmp_path: Path) -> None:
    lum = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    alpha = lum.T.copy()
    Image.fromarray(np.stack([lum, alpha], axis=-1), "LA").save(tmp_path / "la.png")
    bg = (200, 100, 50)
    got = np.asarray(load_image(tmp_path / "la.png", background=bg).image).astype(np.int64)
    rgba = np.stack([lum, lum, lum, alpha], axis=-1)
    assert np.abs(got - _flatten(rgba, bg)).max() <= 1
    assert (got[alpha == 0] == bg).all()
    assert (got[alpha == 255][:, 0] == lum[alpha == 255]).all()


@pytest.mark.parametrize("bg", [(255, 255, 255), (0, 0, 0), (12, 34, 56)])
def test_rgba_flattened_exactly(tmp_path: Path, bg: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)
    rgba[:8, :, 3] = 0
    rgba[8:16, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    got = np.asarray(load_image(tmp_path / "rgba.png", background=bg).image).astype(np.int64)
    assert (got[:8] == bg).all()  # fully transparent: exactly the background
    assert np.array_equal(got[8:16], rgba[8:16, :, :3])  # opaque: exactly the pixel
    assert np.abs(got - _flatten(rgba, bg)).max() <= 1


@pytest.mark.parametrize("size", [(1, 1), (1, 10000), (10000, 1)])
def test_tiny_and_thin(tmp_path: Path, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(2)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "t.png")
    loaded = load_image(tmp_path / "t.png")
    assert loaded.image.size == size
    assert np.array_equal(np.asarray(loaded.image), arr)
    data = (tmp_path / "t.png").read_bytes()
    assert loaded.sha256 == hashlib.sha256(data).hexdigest() and loaded.nbytes == len(data)


# --------------------------------------------------------------------------- bad files


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("this is not a picture\n")
    buf = io.BytesIO()
    textured(256, 256).save(buf, "JPEG", quality=90)
    (tmp_path / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "folder.png").mkdir()
    return {
        "zero": tmp_path / "zero.png",
        "text": tmp_path / "text.jpg",
        "trunc": tmp_path / "trunc.jpg",
        "missing": tmp_path / "missing.png",
        "dir": tmp_path / "folder.png",
    }


@pytest.mark.parametrize("kind", ["zero", "text", "trunc", "missing", "dir"])
def test_bad_files_are_one_line_image_errors(tmp_path: Path, kind: str) -> None:
    path = _bad_files(tmp_path)[kind]
    with pytest.raises(ImageError) as info:
        load_image(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg and len(msg) < 300
    assert isinstance(info.value, InputError)


def test_header_over_100mp_refused_without_decoding(tmp_path: Path) -> None:
    # A 69-byte PNG whose header claims 12000x10000 = 120 MP: below Pillow's own hard
    # limit, so only fluxcompose's 100 MP cap stands between it and a 360 MB buffer.
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 12000, 10000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    png += chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    (tmp_path / "claims120mp.png").write_bytes(png)
    with pytest.raises(ImageError) as info:
        load_image(tmp_path / "claims120mp.png")
    assert "100 MP limit" in str(info.value) and "12000x10000" in str(info.value)


def test_pixel_cap(tmp_path: Path) -> None:
    Image.new("RGB", (20, 20), "red").save(tmp_path / "p.png")
    with pytest.raises(ImageError, match="limit"):
        load_image(tmp_path / "p.png", max_pixels=399)
    assert load_image(tmp_path / "p.png", max_pixels=400).image.size == (20, 20)


# --------------------------------------------------------------------------- shrink on load


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    photo_like(1600, 1200).save(path, quality=92)
    return path


# 1/8, 1/4 plus a remainder, exactly 1/2, 1/2 plus a remainder, 1/8 plus a big remainder, full.
@pytest.mark.parametrize(
    "target", [(200, 150), (347, 260), (800, 600), (700, 525), (40, 30), (1000, 750)]
)
def test_shrink_on_load_matches_full_decode(big_jpeg: Path, target: tuple[int, int]) -> None:
    path = big_jpeg
    loaded = load_image(path, draft_size=target)
    assert loaded.image.size == target
    assert loaded.original_size == (1600, 1200)
    with Image.open(path) as im:
        reference = im.convert("RGB").resize(target, Image.Resampling.LANCZOS)
    # Compared losslessly: both are in-memory pixels, never re-encoded.
    assert psnr(loaded.image, reference) >= 35


# --------------------------------------------------------------------------- URLs


class _Server:
    """A loopback HTTP server with a handful of misbehaving endpoints."""

    def __init__(self, image: bytes) -> None:
        self.image = image
        self.stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, code: int, body: bytes, ctype: str, length: bool = True) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                # The client may hang up once it has seen enough.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._route()

            def _route(self) -> None:
                p = self.path
                if p == "/img.png":
                    self._send(200, server.image, "image/png")
                elif p == "/missing.png":
                    self._send(404, b"not found", "text/plain")
                elif p == "/page.png":
                    self._send(200, b"<html>hello</html>", "text/html")
                elif p == "/big.png":
                    self._send(200, server.image + b"\0" * 5000, "image/png")
                elif p == "/big-nolength.png":
                    self._send(200, server.image + b"\0" * 5000, "image/png", length=False)
                elif p == "/slow.png":
                    server.stop.wait(3)  # longer than the client's timeout; ends at teardown
                    self._send(200, server.image, "image/png")
                elif p == "/trickle.png":
                    # Each chunk arrives well within the per-read timeout, the whole far beyond it.
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(server.image)))
                    self.end_headers()
                    step = max(1, len(server.image) // 20)
                    for i in range(0, len(server.image), step):
                        self.wfile.write(server.image[i : i + step])
                        self.wfile.flush()
                        if server.stop.wait(0.15):
                            return
                elif p == "/to-file.png":
                    self.send_response(302)
                    self.send_header("Location", f"file://{IMAGES / 'hopper.jpg'}")
                    self.end_headers()
                elif p == "/loop.png":
                    self.send_response(302)
                    self.send_header("Location", "/loop.png")
                    self.end_headers()
                elif p == "/to-img.png":
                    self.send_response(302)
                    self.send_header("Location", "/img.png")
                    self.end_headers()
                else:
                    self._send(404, b"", "text/plain")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def png_bytes() -> bytes:
    buf = io.BytesIO()
    textured(64, 48, seed=4).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(png_bytes: bytes) -> Iterator[_Server]:
    with _Server(png_bytes) as srv:
        yield srv


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_url_image(server: _Server, png_bytes: bytes) -> None:
    loaded = load_image(f"{server.base}/img.png")
    assert loaded.source == f"{server.base}/img.png"
    assert loaded.sha256 == hashlib.sha256(png_bytes).hexdigest()
    assert np.array_equal(np.asarray(loaded.image), np.asarray(Image.open(io.BytesIO(png_bytes))))
    redirected = load_image(f"{server.base}/to-img.png")
    assert redirected.sha256 == loaded.sha256


@pytest.mark.parametrize(
    ("path", "kwargs", "words"),
    [
        ("/missing.png", {}, "404"),
        ("/page.png", {}, "not a readable image"),
        ("/big.png", {"max_bytes": 2000}, "cap"),
        ("/big-nolength.png", {"max_bytes": 2000}, "cap"),
        ("/slow.png", {"timeout": 0.3}, "download"),
        ("/trickle.png", {"timeout": 0.5}, "download"),
        ("/to-file.png", {}, "file:"),
        ("/loop.png", {}, "redirects"),
    ],
)
def test_url_failures(server: _Server, path: str, kwargs: dict[str, float], words: str) -> None:
    url = server.base + path
    with pytest.raises(ImageError) as info:
        load_image(url, **kwargs)  # type: ignore[arg-type]
    msg = str(info.value)
    assert url in msg and words in msg and "\n" not in msg


@pytest.fixture
def raw_reply() -> Iterator[Callable[[bytes], str]]:
    """Serve one canned reply, byte for byte, to the next connection; returns its URL."""
    sockets: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(reply: bytes) -> str:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(10)
        sockets.append(srv)

        def answer() -> None:
            with contextlib.suppress(OSError):
                conn, _ = srv.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(reply)

        t = threading.Thread(target=answer, daemon=True)
        t.start()
        threads.append(t)
        return f"http://127.0.0.1:{srv.getsockname()[1]}/x.png"

    yield start
    for srv in sockets:
        srv.close()
    for t in threads:
        t.join(5)


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", "closed after"),
        (b"NONSENSE\r\n\r\n", "cannot download"),
        (b"", "cannot download"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "cannot download"),
    ],
    ids=["short-body", "bad-status", "no-reply", "bad-chunks"],
)
def test_url_broken_replies(
    raw_reply: Callable[[bytes], str], png_bytes: bytes, reply: bytes, words: str
) -> None:
    # A short body carries a complete PNG: only the Content-Length says it was cut off.
    url = raw_reply(reply + png_bytes if reply.endswith(b"100000\r\n\r\n") else reply)
    with pytest.raises(ImageError) as info:
        load_image(url, timeout=5)
    msg = str(info.value)
    assert url in msg and words in msg and "\n" not in msg


def test_url_within_cap_is_fine(server: _Server) -> None:
    assert load_image(f"{server.base}/img.png", max_bytes=100_000).image.size == (64, 48)


def test_url_unreachable() -> None:
    url = f"http://127.0.0.1:{closed_port()}/x.png"
    with pytest.raises(ImageError, match="cannot download"):
        load_image(url, timeout=2)


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x.png", f"file://{IMAGES / 'hopper.jpg'}", "gopher://127.0.0.1/x"]
)
def test_non_http_urls_refused(url: str) -> None:
    with pytest.raises(ImageError, match="only http and https"):
        load_image(url)


# --------------------------------------------------------------------------- saving


def test_save_image_atomic_by_extension(tmp_path: Path) -> None:
    img = textured(64, 40, seed=6)
    png = save_image_atomic(img, tmp_path / "a.png")
    jpg = save_image_atomic(img, tmp_path / "b.jpg")
    jpeg = save_image_atomic(img, tmp_path / "c.JPEG")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert jpg.read_bytes()[:3] == b"\xff\xd8\xff" and jpeg.read_bytes()[:3] == b"\xff\xd8\xff"
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), np.asarray(img))
    assert psnr(Image.open(jpg).convert("RGB"), img) >= 38
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.jpg", "c.JPEG"]
    # Overwriting replaces the file and still leaves nothing else behind.
    save_image_atomic(Image.new("RGB", (3, 3), "blue"), tmp_path / "a.png")
    assert Image.open(tmp_path / "a.png").size == (3, 3)
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.jpg", "c.JPEG"]


def test_save_image_atomic_failures_leave_nothing(tmp_path: Path) -> None:
    img = Image.new("RGB", (4, 4))
    with pytest.raises(InputError):
        save_image_atomic(img, tmp_path / "x.gifx")
    with pytest.raises(InputError):
        save_image_atomic(img, tmp_path / "nofolder" / "x.png")
    assert os.listdir(tmp_path) == []


def test_write_bytes_atomic_cleans_up_on_error(tmp_path: Path) -> None:
    write_bytes_atomic(tmp_path / "ok.bin", b"abc")
    assert (tmp_path / "ok.bin").read_bytes() == b"abc"
    with pytest.raises(TypeError):
        write_bytes_atomic(tmp_path / "bad.bin", "not bytes")  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == ["ok.bin"]


def test_atomic_writer_renames_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "stem"
    with AtomicWriter(target, durable=False) as writer:
        writer.write(b"abc")
        assert not target.exists() and writer.tmp.exists()
        final = writer.commit(tmp_path / "stem.bin")
    assert final.read_bytes() == b"abc" and not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["stem.bin"]
    with pytest.raises(RuntimeError), AtomicWriter(target) as writer:
        writer.write(b"half")
        raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["stem.bin"]
    with AtomicWriter(target) as writer:  # committed on a clean exit
        writer.write(b"whole")
    assert target.read_bytes() == b"whole"


@pytest.mark.parametrize("durable", [True, False])
def test_write_bytes_atomic_durable_or_not(tmp_path: Path, durable: bool) -> None:
    path = write_bytes_atomic(tmp_path / "f.bin", b"x" * 1000, durable=durable)
    assert path.read_bytes() == b"x" * 1000
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with atomic_path(tmp_path / "g.png", durable=durable) as tmp:
        Image.new("RGB", (2, 2)).save(tmp, "PNG")
    assert Image.open(tmp_path / "g.png").size == (2, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "g.png"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
