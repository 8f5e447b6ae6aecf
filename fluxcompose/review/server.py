"""The review page's web app (Starlette) and how it is served (uvicorn).

Security (DESIGN.md section 13):

- every request carries the token: ``?token=`` (which also sets a cookie, so the page's own
  requests and images carry it), the cookie, or an ``X-Review-Token`` header; else 403;
- a POST (the only way to change anything) needs the header, which a page from elsewhere
  cannot set, so a cookie alone never changes state;
- files are served only from inside OUTDIR once symlinks are resolved (:func:`contained`).
"""

from __future__ import annotations

import functools
import io
import ipaddress
import json
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..ab import refresh_approval
from ..errors import InputError
from .model import REASONS, Verdict, agreement
from .store import ReviewStore, contained

__all__ = ["RunningServer", "build_app", "is_loopback", "start_server"]

STATIC = Path(__file__).parent / "static"
THUMB_PX = 320
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TokenGate:
    """ASGI middleware: 403 unless the request carries the token (see the module's doc)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    def _cookie_name(self, scope: Scope) -> str:
        server = scope.get("server") or ("", 0)
        return f"fluxcompose_review_{server[1]}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        from_query = (query.get("token") or [""])[0]
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            cookie = SimpleCookie()
        name = self._cookie_name(scope)
        from_cookie = cookie[name].value if name in cookie else ""
        from_header = headers.get("x-review-token", "")
        ok_header = bool(from_header) and secrets.compare_digest(from_header, self.token)
        ok_query = bool(from_query) and secrets.compare_digest(from_query, self.token)
        ok_cookie = bool(from_cookie) and secrets.compare_digest(from_cookie, self.token)
        if scope["method"] not in ("GET", "HEAD"):
            allowed = ok_header
        else:
            allowed = ok_header or ok_query or ok_cookie
        if not allowed:
            resp = PlainTextResponse("403: this page needs the token in the URL it printed", 403)
            await resp(scope, receive, send)
            return
        if not ok_query:
            await self.app(scope, receive, send)
            return
        set_cookie = f"{name}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", set_cookie)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _json_error(exc: Exception, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(exc).split())}, status_code=status)


@functools.lru_cache(maxsize=512)
def _thumb_bytes(path: str, mtime_ns: int, box: tuple[int, int, int, int] | None, px: int) -> bytes:
    with Image.open(path) as im:
        im.load()
        img = im.crop(box) if box is not None else im
        img = img.convert("RGB")
        if px > 0:
            img.thumbnail((px, px))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=88)
    return buf.getvalue()


def _cache_headers(request: Request) -> dict[str, str]:
    """URLs the page versions (``?v=``: the job's change time) may be kept a while; others
    are checked with the server every time."""
    if request.query_params.get("v"):
        return {"Cache-Control": "private, max-age=3600"}
    return {"Cache-Control": "no-cache"}


def _image_response(
    request: Request, path: Path, box: tuple[int, int, int, int] | None, px: int
) -> Response:
    data = _thumb_bytes(str(path), path.stat().st_mtime_ns, box, px)
    return Response(data, media_type="image/jpeg", headers=_cache_headers(request))


def build_app(store: ReviewStore, token: str) -> ASGIApp:
    """The review app over ``store``, behind the token gate."""
    index_html = (STATIC / "index.html").read_text(encoding="utf-8")

    def index(request: Request) -> Response:
        html = index_html.replace("{{TOKEN}}", token).replace(
            "{{TITLE}}", f"fluxcompose review: {store.root.name}"
        )
        return Response(html, media_type="text/html; charset=utf-8")

    def static(request: Request) -> Response:
        name = str(request.path_params["name"])
        path = contained(STATIC.resolve(), name)
        if path is None or not path.is_file():
            return PlainTextResponse("not found", 404)
        return FileResponse(path)

    def files(request: Request) -> Response:
        path = contained(store.root, str(request.path_params["path"]))
        if path is None or not path.is_file():
            return PlainTextResponse("not found", 404)
        return FileResponse(path, headers=_cache_headers(request))

    def jobs(request: Request) -> Response:
        current = store.current()
        out = []
        for e in store.jobs():
            row = e.compact()
            r = current.get(e.key)
            row["review"] = None if r is None else r.verdict
            row["reasons"] = [] if r is None else list(r.reasons)
            out.append(row)
        counts: dict[str, int] = {
            "jobs": len(out),
            "passed": 0,
            "failed": 0,
            "not_measured": 0,
            "unreviewed": 0,
            "approved": 0,
            "rejected": 0,
            "flagged": 0,
        }
        for row in out:
            counts[row["checks"]] += 1
            counts[
                {"approve": "approved", "reject": "rejected"}.get(row["review"], "unreviewed")
            ] += 1
            counts["flagged"] += bool(row["flagged"])
        return JSONResponse(
            {
                "kind": store.kind,
                "arms": store.arms,
                "root": store.root.name,
                "version": store.version(),
                "reasons": [{"name": n, "label": label} for n, label in REASONS],
                "counts": counts,
                "jobs": out,
            }
        )

    def version(request: Request) -> Response:
        return JSONResponse({"version": store.version()})

    def job(request: Request) -> Response:
        try:
            return JSONResponse(store.detail(request.query_params.get("key", "")))
        except InputError as exc:
            return _json_error(exc, 404)

    def target(request: Request) -> Response:
        try:
            found = store.target_source(request.query_params.get("key", ""))
        except InputError as exc:
            return _json_error(exc, 404)
        if found is None:
            return PlainTextResponse("no target was sent with this job", 404)
        return _image_response(request, found[0], found[1], 0)

    def thumb(request: Request) -> Response:
        path = contained(store.root, request.query_params.get("path", ""))
        if path is None or not path.is_file():
            return PlainTextResponse("not found", 404)
        try:
            return _image_response(request, path, None, THUMB_PX)
        except OSError:
            return PlainTextResponse("not an image", 404)

    def agreement_view(request: Request) -> Response:
        return JSONResponse(agreement(store.agreement_input()))

    async def _body(request: Request) -> dict[str, Any]:
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise InputError("the body must be JSON") from exc
        if not isinstance(data, dict):
            raise InputError("the body must be a JSON object")
        return data

    def _after_change() -> None:
        if store.kind == "ab":
            refresh_approval(store.root)

    async def review(request: Request) -> Response:
        try:
            data = await _body(request)
            verdict = str(data.get("verdict", ""))
            if verdict not in ("approve", "reject"):
                raise InputError("verdict must be approve or reject")
            reasons = data.get("reasons") or []
            if not isinstance(reasons, list):
                raise InputError("reasons must be a list")
            given = Verdict(
                verdict,
                tuple(str(r) for r in reasons),
                data.get("note") or None,
                data.get("reviewer") or None,
            )
            row = await _in_thread(store.record, str(data.get("key", "")), given)
            await _in_thread(_after_change)
        except InputError as exc:
            return _json_error(exc)
        # The row is committed (autocommit INSERT) before this answer leaves.
        return JSONResponse(
            {
                "saved": True,
                "key": data["key"],
                "verdict": row.verdict,
                "reasons": list(row.reasons),
                "id": row.id,
            }
        )

    async def choose(request: Request) -> Response:
        try:
            data = await _body(request)
            index = data.get("candidate")
            if not isinstance(index, int) or isinstance(index, bool):
                raise InputError("candidate must be a number (1-based)")
            detail = await _in_thread(
                store.choose, str(data.get("key", "")), index, data.get("reviewer") or None
            )
            await _in_thread(_after_change)
        except InputError as exc:
            return _json_error(exc)
        return JSONResponse(detail)

    routes = [
        Route("/", index),
        Route("/static/{name:path}", static),
        Route("/files/{path:path}", files),
        Route("/api/jobs", jobs),
        Route("/api/version", version),
        Route("/api/job", job),
        Route("/api/target", target),
        Route("/api/thumb", thumb),
        Route("/api/agreement", agreement_view),
        Route("/api/review", review, methods=["POST"]),
        Route("/api/choose", choose, methods=["POST"]),
    ]
    return TokenGate(Starlette(routes=routes), token)


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking work (SQLite, file copies) off the event loop."""
    return await run_in_threadpool(fn, *args)


@dataclass
class RunningServer:
    """A uvicorn server running in a thread (tests, the bench): ``url`` carries the token."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int
    token: str

    @property
    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/?token={self.token}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: a free port); InputError when it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def make_server(app: ASGIApp) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def start_server(
    store: ReviewStore, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None
) -> RunningServer:
    """Serve ``store`` from a thread; returns once the server accepts connections."""
    token = token or secrets.token_urlsafe(24)
    sock = bind(host, port)
    real_port = int(sock.getsockname()[1])
    server = make_server(build_app(store, token))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()

    def wait() -> None:
        while not server.started and thread.is_alive():
            started.wait(0.01)

    wait()
    return RunningServer(server, thread, host, real_port, token)
