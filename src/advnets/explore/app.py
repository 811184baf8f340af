"""The ``advnets explore`` web app: a Starlette application serving the page and its JSON API.

Starlette (with uvicorn to serve it) because it is small, well kept, ASGI, and ships a test client: the whole
server is this module, with no framework magic between a request and the library call that answers it.

Safety (as Jupyter does it): every request carries the random token printed in the URL -- as the ``token``
query parameter, the ``X-Advnets-Token`` header or the cookie the page sets on its first load -- or is answered
403. Only the package's own ``static/`` files are served; the API takes numbers and choices, never a path (the
run is the one given on the command line). Request bodies are bounded (:data:`MAX_BODY`, 413 beyond) and so is
the request rate (:class:`RateLimit`, 429 beyond). Every error is one JSON object ``{"error": "..."}``: a bad
value 400, an unknown endpoint 404, anything unexpected 500 naming its type, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from advnets.errors import AdvnetsError
from advnets.explore.models import ModelSession
from advnets.explore.toys import ToySession

__all__ = ["COOKIE", "MAX_BODY", "STATIC_DIR", "RateLimit", "create_app"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
COOKIE, HEADER = "advnets_token", "x-advnets-token"
#: The largest request body accepted (a drawn 28 x 28 digit is about 10 kB of JSON).
MAX_BODY = 256 * 1024
#: History points sent with a toy view (older ones are thinned).
MAX_CURVE = 400


class RateLimit:
    """A token bucket: ``rate`` requests a second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float = 200.0, burst: int = 400) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), time.monotonic()
        self.lock = threading.Lock()

    def allow(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens < 1:
                return False
            self.tokens -= 1
            return True


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None (JSON has neither; a diverged loss must not break the page)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class Guard:
    """ASGI middleware: the token, the body size and the rate limit, before anything else runs."""

    def __init__(self, app: Any, token: str, limit: RateLimit) -> None:
        self.app, self.token, self.limit = app, token, limit

    def _has_token(self, request: Request) -> bool:
        given = request.query_params.get("token") or request.headers.get(HEADER) or request.cookies.get(COOKIE)
        return given is not None and secrets.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        if not self._has_token(request):
            return await _error(403, "missing or wrong token: open the URL that advnets explore printed")(
                scope, receive, send
            )
        if not self.limit.allow():
            return await _error(429, "too many requests: slow down")(scope, receive, send)
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return await _error(413, f"request body over {MAX_BODY} bytes")(scope, receive, send)
        seen = 0

        async def bounded() -> dict:  # a body without Content-Length (chunked) is counted as it arrives
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise HTTPException(413, f"request body over {MAX_BODY} bytes")
            return message

        await self.app(scope, bounded, send)


class Explorer:
    """The sessions behind the API, and the one worker thread that answers requests, one at a time (the torch
    state is shared; one long-lived thread also keeps torch's per-thread set-up out of every request)."""

    def __init__(self, toy: ToySession, model: ModelSession | None, threads: int | None = None) -> None:
        self.toy, self.model = toy, model
        init = (lambda: torch.set_num_threads(threads)) if threads else None
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="advnets-explore", initializer=init)

    def toy_view(self) -> dict[str, Any]:
        view = self.toy.view()
        history = view["history"]
        if len(history) > MAX_CURVE:
            stride = math.ceil(len(history) / MAX_CURVE)
            view["history"] = history[-1 - (len(history) - 1) // stride * stride :: stride]
        return view

    def need_model(self) -> ModelSession:
        if self.model is None:
            raise HTTPException(404, "no model loaded: start advnets explore with --run DIR or --pretrained NAME")
        return self.model


def _endpoint(explorer: Explorer, answer: Callable[[Explorer, dict[str, Any]], Any]) -> Callable:
    """An endpoint: the JSON object of the body (POST) or the query (GET), answered in the worker thread."""

    async def endpoint(request: Request) -> Response:
        if request.method == "POST":
            raw = await request.body()
            try:
                args = json.loads(raw or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                return _error(400, "the request body must be JSON")
            if not isinstance(args, dict):
                return _error(400, "the request body must be a JSON object")
        else:
            args = dict(request.query_params)
            args.pop("token", None)

        try:
            result = await asyncio.get_running_loop().run_in_executor(explorer.worker, answer, explorer, args)
        except AdvnetsError as e:
            return _error(400, str(e))
        return JSONResponse(_finite(result))

    return endpoint


def _api_routes(explorer: Explorer) -> list[Route]:
    from advnets.explore.routes import ROUTES

    return [Route(path, _endpoint(explorer, answer), methods=[method]) for (method, path), answer in ROUTES.items()]


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error(500, f"internal error ({type(exc).__name__}); see the server's output")


def create_app(
    token: str,
    toy: ToySession | None = None,
    model: ModelSession | None = None,
    limit: RateLimit | None = None,
    threads: int | None = None,
) -> Any:
    """The ASGI app (Starlette behind :class:`Guard`); ``token`` is the secret every request must carry.
    ``threads``: torch's intra-op threads in the worker that answers requests (None: torch's default)."""
    if not token:
        raise AdvnetsError("the server needs a non-empty token")
    explorer = Explorer(toy or ToySession(), model, threads)

    async def index(request: Request) -> Response:
        response = FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    app = Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            *_api_routes(explorer),
            Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.explorer = explorer
    guarded = Guard(app, token, limit or RateLimit())
    guarded.state = app.state  # type: ignore[attr-defined]  # tests reach the sessions through it
    return guarded
