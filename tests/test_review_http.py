"""The review server over real HTTP (uvicorn on port 0 in a thread): the token, path
traversal (plain, encoded, absolute, symlinks), POST-only changes, and offline assets.

starlette's TestClient needs ``httpx``, which this project does not install (it uses
httpx2), so the tests talk to a real server with ``http.client``: raw paths go out as
written, without any client-side normalisation of ``..``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fluxcompose.journal import Journal
from fluxcompose.review import ReviewStore
from fluxcompose.review.server import RunningServer, is_loopback, start_server
from tests.review_data import copy_batch

SECRET = "top secret outside OUTDIR"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    root = tmp_path_factory.mktemp("http")
    out = copy_batch(root / "out")
    (root / "secret.txt").write_text(SECRET)
    os.symlink(root / "secret.txt", out / "leak.txt")  # a symlink leading out
    os.symlink(root, out / "up")  # a folder symlink leading out
    os.symlink(out / "tee-middle.json", out / "inside.json")  # a symlink staying inside
    store = ReviewStore(out, reviewer="tester")
    server = start_server(store)
    yield server, out
    server.stop()
    store.close()


def request(
    server: RunningServer,
    method: str,
    path: str,
    *,
    body: object | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    data = None if body is None else json.dumps(body).encode()
    hdrs = dict(headers or {})
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    conn.putrequest(method, path, skip_accept_encoding=True)  # the path goes out as written
    for k, v in hdrs.items():
        conn.putheader(k, v)
    if data is not None:
        conn.putheader("Content-Length", str(len(data)))
    conn.endheaders(data)
    resp = conn.getresponse()
    payload = resp.read()
    out = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    return resp.status, out, payload


def tok(server: RunningServer) -> dict[str, str]:
    return {"X-Review-Token": server.token}


def test_every_request_needs_the_token(served: tuple[RunningServer, Path]) -> None:
    server, _ = served
    for path in ("/", "/api/jobs", "/static/app.js", "/files/tee-middle.png", "/api/agreement"):
        assert request(server, "GET", path)[0] == 403, path
        assert request(server, "GET", path, headers={"X-Review-Token": "wrong"})[0] == 403
    assert request(server, "GET", "/?token=wrong")[0] == 403
    status, headers, body = request(server, "GET", f"/?token={server.token}")
    assert status == 200 and b"fluxcompose review" in body
    cookie = headers["set-cookie"].split(";")[0]
    assert server.token in cookie and "HttpOnly" in headers["set-cookie"]
    # The cookie alone lets the page's own requests (images, scripts) through.
    assert request(server, "GET", "/api/jobs", headers={"Cookie": cookie})[0] == 200
    assert request(server, "GET", "/files/tee-middle.png", headers={"Cookie": cookie})[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/files/../secret.txt",
        "/files/../../../../etc/passwd",
        "/files/%2e%2e/secret.txt",
        "/files/%2E%2E%2Fsecret.txt",
        "/files/..%2fsecret.txt",
        "/files/thumbs/..%2f..%2fsecret.txt",
        "/files/%2fetc%2fpasswd",
        "/files//etc/passwd",
        "/files/leak.txt",
        "/files/up/secret.txt",
        "/api/thumb?path=../secret.txt",
        "/api/thumb?path=%2e%2e%2fsecret.txt",
        "/api/thumb?path=/etc/passwd",
        "/api/thumb?path=leak.txt",
        "/static/../../journal.py",
        "/static/%2e%2e/%2e%2e/journal.py",
    ],
)
def test_nothing_outside_outdir_is_served(served: tuple[RunningServer, Path], path: str) -> None:
    server, _ = served
    status, _, body = request(server, "GET", path, headers=tok(server))
    assert status in (400, 404), (path, status)
    assert SECRET.encode() not in body and b"root:" not in body and b"import" not in body


def test_files_inside_outdir_are_served(served: tuple[RunningServer, Path]) -> None:
    server, out = served
    status, _, body = request(server, "GET", "/files/tee-middle.png", headers=tok(server))
    assert status == 200 and body == (out / "tee-middle.png").read_bytes()
    status, _, body = request(server, "GET", "/files/inside.json", headers=tok(server))
    assert status == 200 and json.loads(body)["job_id"] == "tee-middle"
    status, headers, body = request(
        server, "GET", "/api/target?key=tee-middle", headers=tok(server)
    )
    assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"


def test_changes_only_by_post_with_the_header(served: tuple[RunningServer, Path]) -> None:
    server, out = served
    verdict = {"key": "tee-badbox", "verdict": "reject", "reasons": ["size"]}
    for path in ("/api/review", "/api/choose"):
        assert request(server, "GET", path, headers=tok(server))[0] == 405
        assert (
            request(server, "GET", f"{path}?key=tee-badbox&verdict=approve", headers=tok(server))[0]
            == 405
        )
    # A cookie alone (what a page from elsewhere could make a browser send) changes nothing.
    cookie = {"Cookie": f"fluxcompose_review_{server.port}={server.token}"}
    assert request(server, "POST", "/api/review", body=verdict, headers=cookie)[0] == 403
    assert request(server, "POST", f"/api/review?token={server.token}", body=verdict)[0] == 403
    with Journal(out / "journal.sqlite") as j:
        assert "tee-badbox" not in j.current_reviews()
    status, _, body = request(server, "POST", "/api/review", body=verdict, headers=tok(server))
    assert status == 200 and json.loads(body)["saved"] is True
    with Journal(out / "journal.sqlite") as j:  # committed before the answer
        row = j.current_reviews()["tee-badbox"]
        assert (row.verdict, row.reasons, row.reviewer) == ("reject", ("size",), "tester")
    bad = {"key": "tee-badbox", "verdict": "reject", "reasons": ["wobbly"]}
    status, _, body = request(server, "POST", "/api/review", body=bad, headers=tok(server))
    assert status == 400 and "wobbly" in json.loads(body)["error"]


def test_the_page_loads_nothing_from_the_internet(served: tuple[RunningServer, Path]) -> None:
    server, _ = served
    for path in ("/", "/static/app.js", "/static/app.css"):
        status, _, body = request(server, "GET", path, headers=tok(server))
        assert status == 200
        assert not re.search(rb"(src|href)\s*=\s*[\"']?(https?:)?//", body), path
        assert b"@import" not in body and b"url(http" not in body


def test_jobs_endpoint_counts_apart(served: tuple[RunningServer, Path]) -> None:
    server, _ = served
    status, _, body = request(server, "GET", "/api/jobs", headers=tok(server))
    doc = json.loads(body)
    c = doc["counts"]
    assert (c["jobs"], c["passed"], c["failed"], c["not_measured"], c["flagged"]) == (4, 2, 1, 1, 1)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def _start_cli(out: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fluxcompose", "review", str(out), "--no-browser", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the URL is printed (or the process ends)
    return proc, line


def test_port_0_prints_the_real_port_and_a_token(tmp_path: Path) -> None:
    out = copy_batch(tmp_path / "out")
    proc, line = _start_cli(out, "--port", "0")
    try:
        m = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]{20,})", line)
        assert m, line
        port, token = int(m.group(1)), m.group(2)
        assert port != 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/api/jobs?token={token}")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_host_off_loopback_is_warned_about(tmp_path: Path) -> None:
    out = copy_batch(tmp_path / "out")
    proc, line = _start_cli(out, "--port", "0", "--host", "0.0.0.0")
    try:
        assert "token=" in line
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "warning: listening on 0.0.0.0, not on loopback" in err


def test_the_wheel_ships_the_pages_assets(built_wheel: Path) -> None:
    names = set(zipfile.ZipFile(built_wheel).namelist())
    for asset in ("index.html", "app.js", "app.css"):
        assert f"fluxcompose/review/static/{asset}" in names
