"""The demo's HTTP layer (FastAPI on uvicorn): the page, the run's description, and two JSON endpoints.

Bad input is a JSON {"error": message} with a 4xx status that the page shows; an unexpected fault in one request
is a 500 with a one-line message, and the server goes on serving. Nothing is fetched from outside: FastAPI's
interactive docs (which load their scripts from a CDN) are switched off.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import traceback
import urllib.parse
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from harness.demo.engine import Engine
from harness.demo.images import MAX_UPLOAD_BYTES, InputError, from_base64

# Two base64 images and a little JSON around them.
MAX_BODY_BYTES = 2 * (MAX_UPLOAD_BYTES * 4 // 3 + 1024)
STATIC = resources.files("harness.demo") / "static"
log = logging.getLogger("harness.demo")


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The Host headers a demo bound to host:port answers: its own address (and localhost for a loopback one), so
    that a web page cannot reach it through a name it re-points at this machine (DNS rebinding). None: any (bound
    to every interface, the user chose to serve the network)."""
    if host in ("0.0.0.0", "::", ""):
        return None
    shown = f"[{host}]" if ":" in host else host
    names = {shown} | ({"localhost"} if host in ("127.0.0.1", "::1") else set())
    return {f"{name}:{port}" for name in names}


def create_app(engine: Engine, hosts: set[str] | None = None) -> FastAPI:
    """The page and its endpoints. `hosts`: the Host headers answered (allowed_hosts); None answers any."""
    # FastAPI reads the endpoints' annotations (Request) from this module's names: they are imported above.
    app = FastAPI(title="harness demo", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def same_origin(request: Request, call_next: Any) -> Response:
        # Another site's page may send this browser's "simple" requests here (a form, text/plain): only the
        # demo's own page, at the address the demo bound, is answered.
        host = request.headers.get("host", "")
        if hosts is not None and host not in hosts:
            return JSONResponse({"error": f"Host {host!r} is not this demo's address"}, status_code=403)
        origin = request.headers.get("origin")
        if origin is not None and urllib.parse.urlparse(origin).netloc != host:
            return JSONResponse({"error": f"requests from {origin} are not answered"}, status_code=403)
        if request.method == "POST" and \
                request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return JSONResponse({"error": "send JSON (Content-Type: application/json)"}, status_code=415)
        return await call_next(request)

    assets = {name: (STATIC / name).read_bytes() for name in ("index.html", "demo.js", "demo.css")}
    types = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}
    info = engine.info()

    async def body_of(request: Request) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise InputError(f"the upload is {int(declared) / 1e6:.1f} MB; the demo takes images up to "
                             f"{MAX_UPLOAD_BYTES / 1e6:.0f} MB")
        chunks, size = [], 0
        async for chunk in request.stream():  # counted as it arrives: a body without a length is capped too
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise InputError(f"the upload is larger than {MAX_BODY_BYTES / 1e6:.0f} MB")
            chunks.append(chunk)
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
        except ValueError:
            raise InputError("the request is not JSON: send {\"image\": <data URL>}") from None
        except RecursionError:  # [[[[...]]]] thousands deep
            raise InputError("the request nests too deep: send {\"image\": <data URL>}") from None
        if not isinstance(body, dict):
            raise InputError("the request is not a JSON object")
        return body

    def image(part: Any, what: str) -> tuple[bytes, str]:
        part = part if isinstance(part, dict) else {}
        source = "canvas" if part.get("source") == "canvas" else "file"
        return from_base64(part.get("image"), what), source

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed:\n%s", request.method, request.url.path, traceback.format_exc())
        detail = " ".join(str(exc).split())[:200]
        return JSONResponse({"error": f"the server could not answer ({type(exc).__name__}: {detail}); it is still "
                                      "running, try another image"}, status_code=500)

    @app.get("/", response_class=HTMLResponse)
    def page() -> Response:
        return Response(assets["index.html"], media_type="text/html; charset=utf-8")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in assets or name == "index.html":
            return JSONResponse({"error": f"no such file: {name}"}, status_code=404)
        return Response(assets[name], media_type=types[name.rsplit(".", 1)[1]])

    @app.get("/api/info")
    def run_info() -> dict[str, Any]:
        return info

    @app.post("/api/neighbours")
    async def neighbours(request: Request) -> dict[str, Any]:
        data, source = image(await body_of(request), "image")
        return await _in_thread(engine.neighbours, data, source)

    @app.post("/api/compare")
    async def compare(request: Request) -> dict[str, Any]:
        body = await body_of(request)
        (first, source_a), (second, source_b) = image(body.get("first"), "first image"), \
            image(body.get("second"), "second image")
        return await _in_thread(engine.compare, first, second, (source_a, source_b))

    return app


async def _in_thread(function: Any, *args: Any) -> Any:
    """CPU work off the event loop, so a slow request never stalls the page or other requests."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one), or one line saying why not."""
    from harness.errors import HarnessError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise HarnessError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                           "(0 picks a free one)") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def serve(engine: Engine, sock: socket.socket, say: Any = print) -> None:
    """Serve until interrupted; the address is printed (flushed) once the socket listens."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(create_app(engine, allowed_hosts(host, port)), log_level="warning", access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    say(f"serving {engine.chosen.study.name}/{engine.chosen.study.profile} run {engine.chosen.record.run_id} at "
        f"http://{shown}:{port}/  (Ctrl-C stops)")
    sys.stdout.flush()
    server.run(sockets=[sock])
