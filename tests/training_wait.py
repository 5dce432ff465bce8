"""Waiting for a server's training to end (tests that train through the REST API)."""

import time


def wait_training(client, timeout=300):
    """The train task's final status (DONE, ERROR or STOPPED)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.train_status()
        if status.state in ("DONE", "ERROR", "STOPPED"):
            return status
        time.sleep(1)
    raise AssertionError("training did not finish")
