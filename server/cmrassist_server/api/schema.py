"""The API edge's schema layer: what JSON a request may carry, before any handler or task sees it.

- Request JSON is strict: no ``NaN``/``Infinity`` (Python's parser takes them; nothing downstream wants them) and
  nested at most :data:`MAX_DEPTH` deep (a 50,000-deep body made Python's parser raise ``RecursionError``, a 500).
  JSON bodies are checked by :class:`StrictJSONBodies` (ASGI middleware, every route, MONAI Label's included);
  JSON carried in form fields by :func:`json_object`.
- A validation error is answered as 422 with JSON-safe details (FastAPI echoes the input it refused, and a
  ``NaN`` there made the answer itself fail).
"""

import json
import math
import os
import re
import sys
from collections import deque
from typing import Any, Dict, Optional

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from cmrassist_server.core.errors import CMRAssistError

#: Deepest nesting of arrays/objects a request's JSON may have (the API's own shapes need 3).
MAX_DEPTH = 32
#: Largest JSON body (uploads are multipart, never JSON).
MAX_JSON_BYTES = 4 * 1024 * 1024
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def json_depth(raw: bytes) -> int:
    """Deepest nesting of ``[``/``{`` in JSON text (strings left out), without parsing it."""
    data = np.frombuffer(_STRING.sub(b'""', raw), dtype=np.uint8)
    if data.size == 0:
        return 0
    step = np.isin(data, (91, 123)).astype(np.int32) - np.isin(data, (93, 125)).astype(np.int32)
    return int(np.cumsum(step).max(initial=0))


def _no_constant(name: str):
    raise CMRAssistError(f"{name} is not a JSON number: send finite numbers only", 422)


def parse_json(raw: Any, what: str = "request body") -> Any:
    """Strict JSON: refuses non-finite numbers and nesting deeper than :data:`MAX_DEPTH` (422).

    Args:
        raw: the JSON text (``str`` or ``bytes``).
        what: how the message names it.
    """
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else bytes(raw)
    if json_depth(data) > MAX_DEPTH:
        raise CMRAssistError(f"{what} is nested more than {MAX_DEPTH} levels deep", 422)
    try:
        return json.loads(data, parse_constant=_no_constant)
    except CMRAssistError as e:
        raise CMRAssistError(f"{what}: {e}", 422) from None
    except (ValueError, RecursionError):
        raise CMRAssistError(f"{what} must be JSON, not {data[:80]!r}", 422) from None


def json_object(text: Optional[str], what: str = "params") -> Dict[str, Any]:
    """A form field that must hold a JSON object (``{}`` when empty); 422 otherwise."""
    if not text:
        return {}
    value = parse_json(text, what)
    if not isinstance(value, dict):
        raise CMRAssistError(f"{what} must be a JSON object, not {type(value).__name__}", 422)
    return value


class Body(BaseModel):
    """Base of every route's JSON body: finite numbers only, strings of reasonable length."""

    model_config = ConfigDict(allow_inf_nan=False, str_max_length=10_000)


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats and non-JSON objects turned into strings (for error details)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def server_folders() -> Dict[str, str]:
    """The server's folders by the placeholder shown instead of them (longest first, so the most specific wins)."""
    from monailabel.config import settings

    conf = settings.MONAI_LABEL_APP_CONF or {}
    folders = {
        "<studies>": settings.MONAI_LABEL_STUDIES,
        "<models>": conf.get("model_dir"),
        "<app>": settings.MONAI_LABEL_APP_DIR,
        "<python>": sys.prefix,
    }
    found = {os.path.abspath(v): k for k, v in folders.items() if v and not str(v).startswith(("http:", "https:"))}
    return {path: found[path] for path in sorted(found, key=len, reverse=True)}


def without_server_paths(value: Any, folders: Optional[Dict[str, str]] = None) -> Any:
    """``value`` with every server folder in its strings replaced by a placeholder and ``path`` keys left out."""
    folders = server_folders() if folders is None else folders
    if isinstance(value, str):
        for path, name in folders.items():
            value = value.replace(path, name)
        return value
    if isinstance(value, dict):
        return {k: without_server_paths(v, folders) for k, v in value.items() if k != "path"}
    if isinstance(value, (list, tuple, deque)):  # MONAI Label keeps task log lines in a deque
        return [without_server_paths(v, folders) for v in value]
    return value


class StrictJSONBodies:
    """ASGI middleware: a JSON request body is read whole (at most :data:`MAX_JSON_BYTES`), checked by
    :func:`parse_json` and handed on unchanged; refused bodies are answered 413/422 before any route runs."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not _is_json(scope):
            await self.inner(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > MAX_JSON_BYTES:
                await _answer(send, 413, f"a JSON body is at most {MAX_JSON_BYTES // 1024} KiB")
                return
        body = b"".join(chunks)
        try:
            if body.strip():
                parse_json(body)
        except CMRAssistError as e:
            await _answer(send, e.status, str(e))
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.inner(scope, replay, send)


def _is_json(scope) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"content-type":
            return b"json" in value.lower()
    return False


async def _answer(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def install_schema(app: FastAPI) -> None:
    """Answer validation errors with JSON-safe details (the refused input is echoed as text where JSON cannot)."""

    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": json_safe(exc.errors())})

    app.add_exception_handler(RequestValidationError, invalid)
