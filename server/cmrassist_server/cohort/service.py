"""Cohort runs started by the server (``POST /batch/analyse``): the same command in a child process of its own
(never in the server's process), one at a time, over the server's studies into ``<state>/cohort/``, with the
served models. Its status is the last progress line the command printed.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional

from cmrassist_server.cohort.frames import FRAME_MODES
from cmrassist_server.cohort.models import ModelFiles
from cmrassist_server.cohort.outputs import read_json
from cmrassist_server.core.checkpoints import atomic_write_json
from cmrassist_server.core.errors import CMRAssistError

#: Request options and the ``cmrassist analyse`` flag each becomes.
FLAGS = {
    "frames": "--frames",
    "address": "--address",
    "workers": "--workers",
    "cpus_per_worker": "--cpus-per-worker",
    "gpus_per_worker": "--gpus-per-worker",
}


_STARTING = threading.Lock()


def _alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # our own child: reap it once it ends
        return finished == 0
    except ChildProcessError:  # not our child (the server restarted): ask the system
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def _last_line(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as f:
            lines = [line for line in f if line.startswith("{")]
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


class CohortService:
    """Starts, follows and stops the server's cohort runs.

    Args:
        studies: the server's studies folder (a local one).
        state_dir: the app's state folder; runs write to ``<state_dir>/cohort``.
        models: served checkpoint paths by model name (``segmentation``, ``qc``).
    """

    def __init__(self, studies: str, state_dir: str, models: Dict[str, str]):
        self.studies = studies
        self.folder = os.path.join(state_dir, "cohort")
        self.models = models
        self._state_path = os.path.join(self.folder, "server-run.json")

    def _state(self) -> Dict[str, Any]:
        try:
            with open(self._state_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def command(self, options: Dict[str, Any]) -> List[str]:
        """The ``cmrassist analyse`` command line for a request's options (checked by the route's model)."""
        segmentation = self.models.get("segmentation") or ""
        qc = self.models.get("qc")
        # The served model's folder, not its file: the command then segments with the folder's batch choice (the
        # fold ensemble while the served model is the one it shipped with).
        if not os.path.isfile(segmentation):
            raise CMRAssistError("no segmentation model is served: train or install one first", 409)
        files = ModelFiles.resolve(
            os.path.dirname(os.path.abspath(segmentation)), qc=qc if qc and os.path.isfile(qc) else None
        )
        cmd = [
            sys.executable,
            "-m",
            "cmrassist_server.cli",
            "analyse",
            "--studies",
            self.studies,
            "--out",
            self.folder,
            "--model-dir",
            os.path.dirname(files.segmentation),
            "--no-bar",
        ]
        cmd += ["--qc-model", files.qc] if files.qc else []
        for key, flag in FLAGS.items():
            if options.get(key) not in (None, ""):
                cmd += [flag, str(options[key])]
        return cmd + (["--retry-failed"] if options.get("retry_failed") else [])

    def start(self, options: Dict[str, Any], user: str = "") -> Dict[str, Any]:
        """Start a run (409 while one runs; a new run over the same folder only does what is missing)."""
        if options.get("frames", "all") not in FRAME_MODES:
            raise CMRAssistError(f"frames must be one of {', '.join(FRAME_MODES)}", 422)
        with _STARTING:  # two requests at once: the second sees the first's run, never overwrites its record
            return self._start(options, user)

    def _start(self, options: Dict[str, Any], user: str) -> Dict[str, Any]:
        if self.status()["state"] == "running":
            raise CMRAssistError("a cohort run is in progress: wait for it or stop it (DELETE /batch/analyse)", 409)
        cmd = self.command(options)
        os.makedirs(self.folder, exist_ok=True)
        log, err = os.path.join(self.folder, "server-run.jsonl"), os.path.join(self.folder, "server-run.stderr")
        with open(log, "w") as out, open(err, "w") as errors:
            proc = subprocess.Popen(cmd, stdout=out, stderr=errors, stdin=subprocess.DEVNULL, start_new_session=True)
        state = {
            "pid": proc.pid,
            "started": time.time(),
            "options": options,
            "user": user,
            "out": self.folder,
            "log": log,
            "stderr": err,
        }
        atomic_write_json(self._state_path, state)
        return self.status()

    def status(self) -> Dict[str, Any]:
        """``state`` (none, running, done, failed, stopped), the latest progress counters, and when a run ended,
        its error or its results (counts, timings, the subject to review first)."""
        state = self._state()
        if not state:
            return {"state": "none"}
        progress = _last_line(state["log"]) or {}
        # The output folder relative to the studies folder: server paths are not the caller's business.
        out = {
            "state": "running",
            "started": state["started"],
            "options": state["options"],
            "out": os.path.relpath(state["out"], self.studies),
            "progress": progress,
        }
        if _alive(state.get("pid")):
            return out
        if state.get("stopped"):
            out["state"] = "stopped"
        elif progress.get("event") == "done":
            out["state"] = "done"
            record = read_json(os.path.join(state["out"], "run.json")) or {}
            out["run"] = {k: record.get(k) for k in ("run", "counts", "timings", "review_first")}
        else:
            out["state"] = "failed"
            out["error"] = _error(state["stderr"]).replace(os.path.abspath(self.studies), "<studies>")
        return out

    def stop(self) -> Dict[str, Any]:
        """Stop the running run (its finished subjects stay done; a new run goes on from there)."""
        state = self._state()
        if not _alive(state.get("pid")):
            raise CMRAssistError("no cohort run is in progress", 409)
        os.killpg(state["pid"], signal.SIGTERM)
        atomic_write_json(self._state_path, {**state, "stopped": time.time()})
        return self.status()


def _error(path: str) -> str:
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "the run ended without saying why"
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or ["the run ended without saying why"])[-1]
