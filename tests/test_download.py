"""Downloading results: magic-byte extensions, atomic writes, expired links, failures."""

from __future__ import annotations

import contextlib
import email.utils
import io
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxcompose.download import (
    download_result,
    parse_retry_after,
    redact_url,
    sniff_extension,
    write_result_bytes,
)
from fluxcompose.errors import (
    RateLimited,
    RequestError,
    ResultExpired,
    TaskFailed,
    TransientError,
)
from tests.fakeapi import FakeAPI

KNOWN = {"png", "jpg", "webp", "gif", "bmp", "tiff", "avif", "heic"}


def _encode(fmt: str, size: tuple[int, int] = (20, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buf, format=fmt)
    return buf.getvalue()


def _link(api: FakeAPI, data: bytes, ctype: str = "image/png") -> str:
    return api._store_result(data, ctype)


def _only_file(folder: Path) -> Path:
    files = sorted(folder.iterdir())
    assert len(files) == 1, files  # no temporary file left behind
    return files[0]


@pytest.mark.parametrize(
    "fmt,ext",
    [
        ("PNG", "png"),
        ("JPEG", "jpg"),
        ("WEBP", "webp"),
        ("GIF", "gif"),
        ("BMP", "bmp"),
        ("TIFF", "tiff"),
    ],
)
def test_sniff_extension_from_real_encodings(fmt: str, ext: str) -> None:
    assert sniff_extension(_encode(fmt)) == ext


@pytest.mark.parametrize(
    "data", [b"", b"<html><body>expired</body></html>", b'{"error": "x"}', b"\x00" * 64]
)
def test_sniff_extension_rejects_non_images(data: bytes) -> None:
    with pytest.raises(TaskFailed, match="not an image"):
        sniff_extension(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_sniff_extension_returns_a_known_extension_or_task_failed(data: bytes) -> None:
    with contextlib.suppress(TaskFailed):
        assert sniff_extension(data) in KNOWN


def test_download_uses_magic_bytes_not_the_url(fake_api: FakeAPI, tmp_path: Path) -> None:
    jpeg = _encode("JPEG")
    url = _link(fake_api, jpeg, "image/png") + "?name=result.png&sig=abc"  # lying URL and header
    path = download_result(url, tmp_path / "out", "job-1")
    assert path == tmp_path / "out" / "job-1.jpg"
    assert path.read_bytes() == jpeg
    assert _only_file(tmp_path / "out") == path


def test_download_replaces_an_existing_file(fake_api: FakeAPI, tmp_path: Path) -> None:
    (tmp_path / "job.png").write_bytes(b"old")
    png = _encode("PNG", (33, 44))
    path = download_result(_link(fake_api, png), tmp_path, "job")
    assert path.read_bytes() == png
    assert _only_file(tmp_path) == path


@pytest.mark.parametrize("status", [410, 403])
def test_expired_link_after_ttl(fake_api: FakeAPI, tmp_path: Path, status: int) -> None:
    now = [1000.0]
    fake_api.clock = lambda: now[0]
    fake_api.link_ttl = 600
    fake_api.expired_status = status
    url = _link(fake_api, _encode("PNG"))
    now[0] += 599
    download_result(url, tmp_path, "fresh")
    now[0] += 2
    with pytest.raises(ResultExpired, match=r"expired.*10 minutes"):
        download_result(url, tmp_path, "late")
    assert [p.name for p in tmp_path.iterdir()] == ["fresh.png"]


def test_expire_results_and_unknown_link(fake_api: FakeAPI, tmp_path: Path) -> None:
    url = _link(fake_api, _encode("PNG"))
    fake_api.expire_results()
    with pytest.raises(ResultExpired):
        download_result(url, tmp_path, "a")
    with pytest.raises(ResultExpired, match="404"):
        download_result(f"{fake_api.url}/results/never-made", tmp_path, "b")


def test_non_image_content_is_task_failed(fake_api: FakeAPI, tmp_path: Path) -> None:
    fake_api.result_content = b"<html>Sorry, something went wrong</html>"
    with pytest.raises(TaskFailed, match="not an image"):
        download_result(_link(fake_api, _encode("PNG")), tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


def test_too_large_is_refused_without_a_partial_file(fake_api: FakeAPI, tmp_path: Path) -> None:
    png = _encode("PNG", (300, 300))
    with pytest.raises(TaskFailed, match="limit"):
        download_result(_link(fake_api, png), tmp_path, "big", max_bytes=len(png) - 1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "status,exc_type", [(500, TransientError), (502, TransientError), (429, RateLimited)]
)
def test_server_errors(
    fake_api: FakeAPI, tmp_path: Path, status: int, exc_type: type[BaseException]
) -> None:
    fake_api.result_status = status
    with pytest.raises(exc_type):
        download_result(_link(fake_api, _encode("PNG")), tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_is_transient(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientError, match="could not download"):
        download_result(f"http://127.0.0.1:{port}/results/x", tmp_path, "x", timeout=5)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x.png", "data:image/png;base64,AAAA"]
)
def test_only_http_urls(url: str, tmp_path: Path) -> None:
    with pytest.raises(TaskFailed, match="http"):
        download_result(url, tmp_path, "x")


def test_messages_hide_query_strings(fake_api: FakeAPI, tmp_path: Path) -> None:
    fake_api.result_status = 410
    with pytest.raises(ResultExpired) as info:
        download_result(
            _link(fake_api, _encode("PNG")) + "?X-Amz-Signature=secret123", tmp_path, "x"
        )
    assert "secret123" not in str(info.value)
    assert redact_url("https://h/p/a.png?sig=1#f") == "https://h/p/a.png"


def test_write_result_bytes(tmp_path: Path) -> None:
    webp = _encode("WEBP")
    path = write_result_bytes(webp, tmp_path / "new", "job")
    assert path.name == "job.webp" and path.read_bytes() == webp
    with pytest.raises(TaskFailed):
        write_result_bytes(b"not an image", tmp_path / "new", "bad")
    assert _only_file(tmp_path / "new") == path


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(90, abs=1)
    past = email.utils.formatdate(now - 90, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


def test_other_4xx_is_a_request_error(fake_api: FakeAPI, tmp_path: Path) -> None:
    fake_api.result_status = 400
    with pytest.raises(RequestError, match="400"):
        download_result(_link(fake_api, _encode("PNG")), tmp_path, "x")
    assert list(tmp_path.iterdir()) == []


def test_downloads_reuse_one_connection(fake_api: FakeAPI, tmp_path: Path) -> None:
    for i in range(3):
        download_result(_link(fake_api, _encode("PNG")), tmp_path, f"r{i}")
    ports = {r.client_port for r in fake_api.of_kind("result")}
    assert len(fake_api.of_kind("result")) == 3 and len(ports) == 1
