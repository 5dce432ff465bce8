"""``GET /auth/me`` (who the server takes you for, and what you may do), ``GET /audit`` (admins), and
``POST /activelearning/{strategy}`` answered without server paths."""

import os
from typing import Optional

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool

from cmrassist_server.api.routing import api_prefix, mount_first, role
from cmrassist_server.api.schema import json_object
from cmrassist_server.core.errors import CMRAssistError


def install_account_routes(app: FastAPI, instance, audit) -> None:
    """Add the routes.

    Args:
        app: MONAI Label's FastAPI app.
        instance: returns the MONAI Label app (for the strategies).
        audit: the audit log (``accounts/audit.AuditLog``).
    """
    app.state.cmrassist_audit = audit
    router = APIRouter(prefix=api_prefix(), tags=["Accounts"])

    @router.get("/auth/me", summary="The account this request is answered as, and what it may do")
    def me(request: Request, account=role("user")):
        return {**account.as_dict(), "auth": not account.open}

    @router.get("/audit", summary="Every recorded change, oldest first (admins)")
    def read_audit(
        since: int = Query(0, ge=0, le=2**62),
        limit: int = Query(1000, ge=1, le=10000),
        action: Optional[str] = None,
        account=role("admin"),
    ):
        return {"entries": audit.read(since_id=since, limit=limit, action=action)}

    @router.post("/activelearning/{strategy}", summary="The next study to work on (by a strategy)")
    async def next_study(strategy: str, request: Request, account=role("user")):
        params = json_object((await request.body()).decode("utf-8", "replace") or "{}", "request body")
        app_ = instance()
        if strategy not in app_._strategies:
            raise CMRAssistError(f"unknown strategy {strategy!r}; available: {sorted(app_._strategies)}", 404)
        result = await run_in_threadpool(app_.next_sample, {**params, "strategy": strategy})
        # Server paths tell a caller nothing it may use and something about the server: ids only.
        return {k: v for k, v in (result or {}).items() if not (isinstance(v, str) and os.path.isabs(v))}

    mount_first(app, router, "accounts")
