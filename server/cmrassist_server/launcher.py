"""Start and stop a real ``monailabel start_server`` process on loopback (tests and benchmarks use it)."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional

APP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_info(url: str, timeout: float, proc: Optional[subprocess.Popen] = None, log_path: str = "") -> float:
    """Poll ``GET /info/`` until it answers; returns the seconds waited."""
    start = time.time()
    while time.time() - start < timeout:
        if proc is not None and proc.poll() is not None:
            tail = ""
            if log_path:
                with open(log_path) as f:
                    tail = f.read()[-3000:]
            raise RuntimeError(f"server exited at start:\n{tail}")
        try:
            urllib.request.urlopen(url + "/info/", timeout=2).read()
            return time.time() - start
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):  # answering, behind sign-in
                return time.time() - start
            time.sleep(0.1)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not answer within {timeout:g} s")


def server_command(
    studies: str, model_dir: str, *, host: str = "127.0.0.1", port: int = 8000, conf: Optional[List[str]] = None
) -> List[str]:
    """``monailabel start_server`` for the CMRAssist app (what ``cmrassist serve`` and the tests run)."""
    bindir = os.path.dirname(sys.executable)
    cmd = [os.path.join(bindir, "monailabel"), "start_server", "--app", APP_DIR, "--studies", studies]
    cmd += ["--host", host, "--port", str(port), "--uvicorn_app", "cmrassist_server.api.asgi:app"]
    return cmd + ["--conf", "model_dir", os.path.abspath(model_dir), *(conf or [])]


def server_env() -> Dict[str, str]:
    """The environment MONAI Label's launcher needs: it runs ``python`` from PATH, so this interpreter comes first
    (without it, a shell whose venv is not activated gets "No module named monailabel")."""
    bindir = os.path.dirname(sys.executable)
    return {
        **os.environ,
        "MONAI_LABEL_TRACKING_ENABLED": "false",
        "MONAILABEL_PYEXE": sys.executable,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
    }


class RunningServer:
    """A MONAI Label server with the CMRAssist app, in its own process group.

    Args:
        studies: studies folder.
        model_dir: where checkpoints live.
        log_path: file receiving the server's output.
        extra_conf: more ``--conf`` pairs.
        env: more environment variables for the server (e.g. MONAI Label's own settings).
    """

    def __init__(
        self,
        studies: str,
        model_dir: str,
        log_path: str,
        extra_conf: Optional[List[str]] = None,
        env: Optional[Dict[str, str]] = None,
    ):
        self.studies, self.model_dir, self.log_path, self.extra_conf = studies, model_dir, log_path, extra_conf or []
        self.env = dict(env or {})
        self._start("w")

    def restart(self) -> None:
        """Stop the server and start it again on the same studies and models (on a new port)."""
        self.stop()
        self._start("a")

    def _start(self, log_mode: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = server_command(self.studies, self.model_dir, port=self.port, conf=self.extra_conf)
        self.log = open(self.log_path, log_mode)  # noqa: SIM115 - the server writes to it until stop() closes it
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env={**server_env(), **self.env}, start_new_session=True
        )
        try:
            self.startup_s = wait_for_info(self.url, 120, self.proc, self.log_path)
        except RuntimeError:
            self.stop()
            raise

    def datastore_json(self) -> str:
        with open(os.path.join(self.studies, "datastore_v2.json")) as f:
            return f.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self.log.close()
