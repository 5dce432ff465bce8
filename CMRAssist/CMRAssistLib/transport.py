"""HTTP plumbing of the REST client: standard library only (it runs in Slicer's Python and its worker process).

Every failure surfaces as :class:`ServerError` with a message a user can read; no call blocks longer than its
timeout. Large bodies go up and answers come down in chunks, each reported as the fraction done. With an API token,
every request carries ``Authorization: Bearer <token>``; a refusal for want of sign-in (401) or of a role (403) says
so in the user's words.
"""

import json
import mimetypes
import os
import re
import socket
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib import error, parse, request


class ServerError(Exception):
    """A request failed; ``status`` is the HTTP status (0 when the server could not be reached)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


#: What a request refused for want of a role would have done, in the user's words (a 403 names it).
ACTIONS = (
    ("PUT", r"/datastore/label", "submit labels"),
    ("PUT", r"/datastore/image(/info)?", "add or change studies"),
    ("POST", r"/versions/[^/]+/accept", "accept label versions"),
    ("POST", r"/versions/[^/]+/consensus", "build a consensus"),
    ("PUT", r"/ranking/cut_points", "set the cut points"),
    ("GET", r"/ranking/ordered", "see every ranked slice"),
    ("POST", r"/ranking/(batch|submit)", "rank slices"),
    ("POST", r"/train/.*", "start training"),
    ("DELETE", r"/train/?", "stop training"),
    ("PUT", r"/model_versions/.*", "change the served model"),
)


def refusal(method: str, path: str, status: int, detail: str, *, server_url: str, signed: bool) -> str:
    """The message of a refused request: sign in (401), a role that cannot do it (403), else the server's words."""
    if status == 401:
        if not signed:
            return (
                f"sign in: the server at {server_url} needs an API token (its admin makes one with "
                f"`cmrassist users add`): {detail}"
            )
        return f"sign in: the server at {server_url} did not accept your API token: {detail}"
    if status == 403:
        action = next((text for m, pattern, text in ACTIONS if m == method and re.fullmatch(pattern, path)), None)
        return f"your role cannot {action or f'{method} {path}'}: {detail}"
    return f"server refused {method} {path} ({status}): {detail}"


class HttpTransport:
    """Requests to one server (``server_url``, ``timeout``, optional API ``token``); the REST client adds the
    endpoints."""

    server_url: str
    timeout: float
    token: str = ""

    def _url(self, path: str, query: Optional[Dict[str, Any]] = None) -> str:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        return self.server_url + path + ("?" + parse.urlencode(q) if q else "")

    def _send(
        self,
        method: str,
        path: str,
        *,
        query=None,
        body: Optional[bytes] = None,
        ctype: Optional[str] = None,
        timeout: Optional[float] = None,
        progress: Optional[Callable[[float], None]] = None,
    ) -> Tuple[bytes, Dict[str, str]]:
        """One request; with ``progress``, a large body goes up and the answer comes down in chunks, each reported
        as the fraction of that direction done (no call of this client is large both ways)."""
        data: Any = body
        if progress is not None and body and len(body) > _CHUNK:
            data = _Chunks(body, progress)
        req = request.Request(self._url(path, query), data=data, method=method)
        if ctype:
            req.add_header("Content-Type", ctype)
        if body is not None:
            req.add_header("Content-Length", str(len(body)))
        if self.token:
            # Unredirected: a redirect (to another host, say) never carries the token along.
            req.add_unredirected_header("Authorization", f"Bearer {self.token}")
        try:
            with request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return _read(resp, progress), dict(resp.headers)
        except error.HTTPError as e:
            raw = e.read()
            try:
                detail = json.loads(raw).get("detail", raw.decode(errors="replace"))
            except ValueError:
                detail = raw.decode(errors="replace")[:300] or e.reason
            message = refusal(method, path, e.code, detail, server_url=self.server_url, signed=bool(self.token))
            raise ServerError(message, status=e.code) from None
        except (socket.timeout, TimeoutError):
            raise ServerError(
                f"server at {self.server_url} did not answer within {timeout or self.timeout:g} s"
            ) from None
        except error.URLError as e:
            raise ServerError(f"cannot reach server at {self.server_url}: {e.reason}") from None
        except (ConnectionError, OSError) as e:
            raise ServerError(f"connection to {self.server_url} failed: {e}") from None

    def _json(self, method: str, path: str, **kwargs) -> Any:
        raw, _ = self._send(method, path, **kwargs)
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise ServerError(f"{path} answered with something that is not JSON: {raw[:120]!r}") from None


def _multipart(fields: Dict[str, str], files: Dict[str, str]) -> Tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: List[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, path in files.items():
        with open(path, "rb") as f:
            data = f.read()
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{os.path.basename(path)}"\r\nContent-Type: {ctype}\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


_CHUNK = 256 * 1024


class _Chunks:
    """A request body sent in chunks (urllib iterates it), reporting the fraction sent."""

    def __init__(self, body: bytes, progress: Callable[[float], None]):
        self.body, self.progress = body, progress

    def __iter__(self):
        for start in range(0, len(self.body), _CHUNK):
            yield self.body[start : start + _CHUNK]
            self.progress(min(1.0, (start + _CHUNK) / len(self.body)))


def _read(resp, progress: Optional[Callable[[float], None]]) -> bytes:
    """The answer's body; with ``progress``, read in chunks and reported against Content-Length."""
    if progress is None:
        return resp.read()
    total = int(resp.headers.get("Content-Length") or 0)
    chunks, done = [], 0
    while True:
        chunk = resp.read(_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
        if total:
            progress(min(1.0, done / total))
    return b"".join(chunks)


def _filename(headers: Dict[str, str]) -> Optional[str]:
    disposition = headers.get("content-disposition") or headers.get("Content-Disposition") or ""
    for part in disposition.split(";"):
        part = part.strip()
        if part.startswith("filename="):
            return parse.unquote(part.split("=", 1)[1].strip('"'))
    return None
