"""The ASGI app ``cmrassist serve`` runs (``monailabel start_server --uvicorn_app cmrassist_server.api.asgi:app``):
MONAI Label's FastAPI app, prepared before it starts serving.

- Only the product's routes: MONAI Label's sessions (whose tar upload wrote anywhere), logs, model download and
  upload, dataset export, deletes, label-info edits, batch and WSI inference, the OHIF viewer, the DICOM proxy,
  ``/reload`` and the deprecated "all models" routes answer 404.
- No cross-origin access unless the ``cors_origins`` setting names origins (MONAI Label allows every origin
  with credentials).
- JSON bodies strict (``api/schema.py``): finite numbers, nesting at most 32 deep.
- Request bodies capped (``max_upload_mb``, 1024 by default): 413 beyond.
"""

import json
import re
from typing import List, Tuple

from monailabel.app import app
from monailabel.config import settings
from starlette.middleware.cors import CORSMiddleware

from cmrassist_server.api.schema import StrictJSONBodies, install_schema

#: ``(method or "*", path pattern)`` pairs no request reaches.
DISABLED: List[Tuple[str, str]] = [
    ("*", r"/session(/.*)?"),
    ("*", r"/logs(/.*)?"),
    ("*", r"/model(/.*)?"),
    ("*", r"/ohif(/.*)?"),
    ("*", r"/proxy(/.*)?"),
    ("*", r"/batch/infer(/.*)?"),
    ("*", r"/infer/wsi.*"),
    ("POST", r"/reload"),
    ("GET", r"/datastore/dataset"),
    ("DELETE", r"/datastore/.*"),
    ("PUT", r"/datastore/?"),
    ("PUT", r"/datastore/label/info"),
    ("PUT", r"/datastore/updatelabelinfo"),
    ("POST", r"/train/?"),
    ("POST", r"/scoring/?"),
]
_DISABLED = [(method, re.compile(settings.MONAI_LABEL_API_STR + pattern)) for method, pattern in DISABLED]
#: Set when this module prepared the app; the app refuses to serve without it (``main.py``).
HARDENED = True


class DisabledRoutes:
    """ASGI middleware answering 404 for :data:`DISABLED` routes, before any of MONAI Label's code runs."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and any(
            method in ("*", scope["method"]) and pattern.fullmatch(scope["path"]) for method, pattern in _DISABLED
        ):
            body = json.dumps({"detail": f"{scope['method']} {scope['path']} is not offered by this server"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.inner(scope, receive, send)


def _conf(key: str, default: str) -> str:
    return str((settings.MONAI_LABEL_APP_CONF or {}).get(key, default))


def prepare() -> None:
    """Replace MONAI Label's CORS policy, add the route filter and the body cap (before the app has started)."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not CORSMiddleware]
    origins = [o.strip() for o in _conf("cors_origins", "").split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["authorization", "content-type"],
        )
    app.add_middleware(StrictJSONBodies)
    app.add_middleware(DisabledRoutes)
    install_schema(app)
    app.max_body_size = int(float(_conf("max_upload_mb", "1024")) * 1024 * 1024)


prepare()
