"""The worker process: runs the annotation session's calls (network and file work) off Slicer's GUI thread.

``background.BackgroundRunner`` starts ``python -u -m CMRAssistLib.worker`` (Slicer's ``PythonSlicer`` inside
Slicer) once per connection and keeps it. Each request is one JSON line on its standard input with an ``id``;
several run at once (a thread each: this is a plain Python process, not Slicer's GUI thread). Lines starting with
:data:`EVENT` on its standard output answer them: ``{"id", "progress": fraction, "text"}`` while a call works,
then ``{"id", "result": ...}`` or ``{"id", "error": {"type", "message", "status"}}``. ``{"id", "cancel": true}``
stops a call at its next progress report. Qt reads the pipes in C++, so calls advance at full speed whatever the
GUI thread does. Session values (studies, label files, server states) travel as tagged JSON.
"""

import dataclasses
import inspect
import json
import sys
import threading
import traceback
from typing import Any, Callable, Dict, Iterable, Optional

from .account import Account
from .annotation import AnnotationSession, LabelFile, ServerState, Study
from .client import ServerError, TrainStatus
from .settings import UserSettings

EVENT = "CMRASSIST_JOB "
_TYPES = {cls.__name__: cls for cls in (Study, LabelFile, ServerState, TrainStatus, Account)}


def encode(value: Any) -> Any:
    """JSON-able form of a session value: dataclasses and tuples are tagged so :func:`decode` rebuilds them."""
    if dataclasses.is_dataclass(value) and type(value).__name__ in _TYPES:
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, "fields": fields}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def decode(value: Any) -> Any:
    """The session value :func:`encode` turned into JSON."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if "__type__" in value:
            return _TYPES[value["__type__"]](**{k: decode(v) for k, v in value["fields"].items()})
        if "__tuple__" in value:
            return tuple(decode(v) for v in value["__tuple__"])
        return {k: decode(v) for k, v in value.items()}
    return value


def request(session: AnnotationSession, method: str, args: tuple, kwargs: Dict[str, Any], ident: int = 0) -> bytes:
    """The request a worker reads: who (settings, the API token with them), where (work folder), and the session
    call. It goes to the worker's standard input: a token is never on a command line or in a file."""
    if method.startswith("_") or not callable(getattr(AnnotationSession, method, None)):
        raise AttributeError(f"the annotation session has no call {method!r}")
    body = {
        "id": ident,
        "settings": dataclasses.asdict(session.settings),
        "workdir": session.workdir,
        "method": method,
        "args": encode(list(args)),
        "kwargs": encode(kwargs),
    }
    return json.dumps(body).encode() + b"\n"


def parse_event(line: str) -> Optional[Dict[str, Any]]:
    """The event of a worker output line, or None for any other line."""
    if not line.startswith(EVENT):
        return None
    try:
        event = json.loads(line[len(EVENT) :])
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def error_from(event: Dict[str, Any]) -> Exception:
    """The exception a worker reported, rebuilt for the panel (a ServerError keeps its HTTP status)."""
    kind, message = event.get("type", "Exception"), str(event.get("message", ""))
    if kind == "ServerError":
        return ServerError(message, int(event.get("status") or 0))
    return ValueError(message) if kind == "ValueError" else RuntimeError(f"{kind}: {message}")


class Cancelled(Exception):
    """The panel cancelled the call."""


def run(body: Dict[str, Any], emit: Callable[[Dict[str, Any]], None], cancelled: Callable[[], bool] = bool) -> None:
    """Run one request, emitting progress events and then the result or the error (each with the request's id)."""
    ident = body.get("id")

    def progress(fraction: float, text: str = "") -> None:
        if cancelled():
            raise Cancelled("cancelled")
        emit({"id": ident, "progress": float(fraction), "text": str(text)})

    try:
        session = AnnotationSession(UserSettings(**body["settings"]), body["workdir"])
        call = getattr(session, body["method"])
        kwargs = decode(body.get("kwargs") or {})
        if "progress" in inspect.signature(call).parameters:
            kwargs["progress"] = progress
        emit({"id": ident, "result": encode(call(*decode(body.get("args") or []), **kwargs))})
    except Exception as e:  # every failure reaches the panel as a readable message
        if not isinstance(e, Cancelled):
            traceback.print_exc()
        emit(
            {"id": ident, "error": {"type": type(e).__name__, "message": str(e), "status": getattr(e, "status", None)}}
        )


def serve(lines: Iterable[str], write: Callable[[str], None]) -> None:
    """Answer request lines until the input ends (the panel closed it), then let the calls still running finish."""
    lock, flags, threads = threading.Lock(), {}, []

    def emit(event: Dict[str, Any]) -> None:
        with lock:  # one event per line, whichever call's thread reports it
            write(EVENT + json.dumps(event) + "\n")

    for line in lines:
        if not line.strip():
            continue
        body = json.loads(line)
        if body.get("cancel"):
            flags[body.get("id")] = True
            continue
        ident = body.get("id")
        thread = threading.Thread(target=run, args=(body, emit, lambda i=ident: flags.get(i, False)), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()


def main() -> None:
    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    serve(sys.stdin, write)


if __name__ == "__main__":
    main()
