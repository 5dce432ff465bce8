#!/usr/bin/env python
"""How long ``make serve`` (no STUDIES=, a prepared venv) takes until the demo answers a one-click segmentation:
phantom studies written, the shipped models installed, the server up, the first label back.

    .venv/bin/python bench/demo_ready.py
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time

from cmrassist_server.launcher import free_port, wait_for_info
from CMRAssistLib.client import CMRAssistClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="demo-ready-")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONAI", "CMRASSIST"))}
    start = time.time()
    cmd = ["make", "-s", "serve", f"DEMO_STUDIES={work}/studies", f"MODEL_DIR={work}/model", f"PORT={port}"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True
    )
    try:
        wait_for_info(f"http://127.0.0.1:{port}", args.timeout, proc)
        up = time.time() - start
        client = CMRAssistClient(f"http://127.0.0.1:{port}", timeout=120)
        info = client.info()
        first = sorted(i for i in client.datastore()["objects"] if i.endswith("_ed"))[0]
        client.infer(first, work)
        ready = time.time() - start
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)
    result = {
        "server_answering_s": round(up, 1),
        "first_segmentation_s": round(ready, 1),
        "shipped_models": info.get("shipped_models"),
        "phantoms": len(os.listdir(f"{work}/studies")),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
    }
    print(
        f"make serve (demo, prepared venv): server answering after {up:.1f} s, first one-click segmentation "
        f"back after {ready:.1f} s"
    )
    print("setting: " + json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
