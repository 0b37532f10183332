"""JSON responses and error handling shared by the views (aiohttp, no Faust app)."""

from __future__ import annotations

import functools
import logging
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from ..errors import RequestError
from .params import BadRequest
from .schemas import CONTENT_TYPE, ApiError

__all__ = ["NotFound", "Unauthorized", "answer", "json_errors", "json_response", "registry_answer",
           "registry_response"]

log = logging.getLogger(__name__)


class NotFound(RequestError, LookupError):
    """Answered with 404 and the message."""


class Unauthorized(RequestError, PermissionError):
    """Answered with 401 and the message."""


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS), status=status,
                        content_type="application/json", headers=headers)


def registry_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A schema-registry answer, with Confluent's content type."""
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    return web.Response(body=raw, status=status, content_type=CONTENT_TYPE, headers=headers)


def _registry_error(status: int, code: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="atlas"'} if status == 401 else None
    return registry_response({"error_code": code, "message": message}, status, headers)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="atlas"'} if status == 401 else None
    return json_response({"error": message, **extra}, status=status, headers=headers)


Handler = Callable[..., Awaitable[Any]]


def answer(fun: Handler) -> Handler:
    """Turn the view's exceptions into JSON errors: BadRequest 400, Unauthorized 401,
    NotFound 404, ApiError its own status (Confluent's error body); anything else 500."""

    @functools.wraps(fun)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fun(*args, **kwargs)
        except BadRequest as exc:
            return _error(400, str(exc))
        except Unauthorized as exc:
            return _error(401, str(exc))
        except NotFound as exc:
            return _error(404, str(exc))
        except ApiError as exc:
            return json_response(exc.body(), status=exc.status)
        except Exception:
            log.exception("web request failed")
            return _error(500, "internal error (see the worker log)")

    return wrapper


def registry_answer(fun: Handler) -> Handler:
    """Like :func:`answer`, with Confluent's error bodies ``{"error_code", "message"}``:
    Unauthorized 401/40101, BadRequest 400/400, ApiError its own, anything else 500/50001."""

    @functools.wraps(fun)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fun(*args, **kwargs)
        except ApiError as exc:
            return _registry_error(exc.status, exc.code, exc.message)
        except Unauthorized as exc:
            return _registry_error(401, 40101, str(exc))
        except BadRequest as exc:
            return _registry_error(400, 400, str(exc))
        except Exception:
            log.exception("schema-registry request failed")
            return _registry_error(500, 50001, "internal error (see the worker log)")

    return wrapper


def _is_registry(path: str) -> bool:
    return path == "/schemas" or path.startswith("/schemas/")


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """Unknown paths and methods answer JSON (404, 405) like the views do."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if _is_registry(request.path):
            return _registry_error(exc.status, exc.status, f"HTTP {exc.status} {exc.reason}")
        return _error(exc.status, exc.reason, path=request.path[:200])
