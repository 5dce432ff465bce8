"""``/scoring`` and the status of background tasks, answered before MONAI Label's routes of the same paths.

Scoring runs in a child process, never on the event loop (``run_sync`` refused as on training); starting or
stopping it takes the reviewer role (it decides what the review queue holds and costs CPU); statuses name no server
folder (task logs are shown with ``<studies>``, ``<models>``, ``<app>`` in place of the paths).
"""

from typing import Optional

from fastapi import APIRouter, FastAPI, Request

from cmrassist_server.api.routing import api_prefix, mount_first, record, role
from cmrassist_server.api.schema import without_server_paths
from cmrassist_server.core.errors import CMRAssistError


def _status(kind: str, all_tasks: bool, check_if_running: bool):
    from monailabel.utils.async_tasks.task import AsyncTask

    result, detail = AsyncTask.status(kind, all_tasks, check_if_running)
    if result is None:
        raise CMRAssistError(str(detail), 404)
    return without_server_paths(result)


def install_task_routes(app: FastAPI, instance) -> None:
    """Add ``POST /scoring/{method}``, ``GET /scoring/``, ``DELETE /scoring/`` and ``GET /train/``.

    Args:
        app: MONAI Label's FastAPI app.
        instance: returns the MONAI Label app.
    """
    from monailabel.utils.async_tasks.task import AsyncTask

    router = APIRouter(prefix=api_prefix(), tags=["Scoring"])

    @router.post("/scoring/{method}", summary="Score every study in the background (reviewers)")
    def run_scoring(
        request: Request, method: str, params: Optional[dict] = None, run_sync: bool = False, account=role("reviewer")
    ):
        methods = instance()._scoring_methods
        if method not in methods:
            raise CMRAssistError(f"unknown scoring method {method!r}; available: {sorted(methods)}", 404)
        if run_sync:
            raise CMRAssistError("scoring runs in its own process; run_sync would stall every request", 422)
        result, detail = AsyncTask.run("scoring", request={"method": method}, params=params or {}, force_sync=False)
        if result is None:
            raise CMRAssistError(f"scoring is running already: {detail}", 409)
        record(request, account, "scoring_started", method)
        return without_server_paths(result)

    @router.get("/scoring/", summary="Status of the scoring task and what the last run did")
    def scoring_status(all: bool = False, check_if_running: bool = False, user=role("user")):
        out = _status("scoring", all, check_if_running)
        last = {n: getattr(m, "last_result", lambda: None)() for n, m in instance()._scoring_methods.items()}
        return {**out, "last_result": without_server_paths(last)} if isinstance(out, dict) else out

    @router.delete("/scoring/", summary="Stop the scoring task")
    def stop_scoring(request: Request, account=role("reviewer")):
        record(request, account, "scoring_stopped", None)
        return without_server_paths(AsyncTask.stop("scoring"))

    @router.get("/train/", summary="Status of the training task")
    def train_status(all: bool = False, check_if_running: bool = False, user=role("user")):
        return _status("train", all, check_if_running)

    mount_first(app, router, "tasks")
