"""The server's one error type.

It is a Starlette ``HTTPException`` (and a ``ValueError``): wherever it is raised inside a request (our routes,
MONAI Label's endpoints calling our datastore or tasks), FastAPI's own handler answers it with its status and
message, so no route converts errors itself. Outside a request (CLI, training) it is an ordinary exception.
"""

from typing import Dict, Optional

from starlette.exceptions import HTTPException


class CMRAssistError(HTTPException, ValueError):
    """A request the server refuses or input the user must fix, with the HTTP status to answer it with.

    Args:
        message: one readable line saying what is wrong and, where it helps, what to do.
        status: HTTP status (400 bad input, 401 not signed in, 403 not allowed, 404 unknown, 409 not possible now,
            413 too large, 422 invalid values, 507 disk full).
        headers: response headers (``WWW-Authenticate`` on 401).
    """

    def __init__(self, message: str, status: int = 400, headers: Optional[Dict[str, str]] = None):
        HTTPException.__init__(self, status_code=status, detail=message, headers=headers)

    @property
    def status(self) -> int:
        return self.status_code

    def __str__(self) -> str:
        return str(self.detail)
