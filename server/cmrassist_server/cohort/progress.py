"""Progress of a cohort run: a terminal bar (studies/s, ETA) and the same counters as JSON lines for a
scheduler's logs (and for the server, which shows the last one in its status).

JSON line: ``{"event": "start"|"progress"|"done", "total", "done", "failed", "skipped", "remaining", "frames",
"elapsed_s", "studies_per_s", "frames_per_s", "eta_s", ...}``; progress lines come at most once per
``every_s`` seconds (and after the last subject).
"""

import json
import sys
import time
from typing import IO, Any, Dict, Optional

from tqdm import tqdm


class Progress:
    """Counts subjects as they finish.

    Args:
        total: subjects in the cohort.
        skipped: subjects already done (or failed) on the same inputs, not analysed again.
        bar: show a terminal bar on stderr.
        stream: where the JSON lines go (``None``: nowhere).
        every_s: least seconds between two progress lines.
    """

    def __init__(
        self, total: int, skipped: int, *, bar: bool = True, stream: Optional[IO] = sys.stdout, every_s: float = 1.0
    ):
        self.total, self.skipped = total, skipped
        self.done = self.failed = self.frames = 0
        self.stream, self.every_s = stream, every_s
        self.started = time.time()
        self._last_line = 0.0
        self.bar = (
            tqdm(total=total, initial=skipped, desc="subjects", unit="study", file=sys.stderr, dynamic_ncols=True)
            if bar
            else None
        )

    def counters(self) -> Dict[str, Any]:
        elapsed = time.time() - self.started
        finished = self.done + self.failed
        remaining = self.total - self.skipped - finished
        rate = finished / elapsed if elapsed > 0 else 0.0
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "remaining": remaining,
            "frames": self.frames,
            "elapsed_s": round(elapsed, 2),
            "studies_per_s": round(rate, 4),
            "frames_per_s": round(self.frames / elapsed, 3) if elapsed > 0 else 0.0,
            "eta_s": round(remaining / rate, 1) if rate > 0 else None,
        }

    def line(self, event: str, **fields: Any) -> None:
        if self.stream is not None:
            self.stream.write(
                json.dumps({"event": event, "time": round(time.time(), 3), **self.counters(), **fields}, default=str)
                + "\n"
            )
            self.stream.flush()

    def update(self, summary: Dict[str, Any]) -> None:
        """One subject finished (``status`` done or failed)."""
        if summary["status"] == "done":
            self.done += 1
            self.frames += summary.get("frames", 0)
        else:
            self.failed += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(frames_s=self.counters()["frames_per_s"], failed=self.failed, refresh=False)
        now = time.time()
        if now - self._last_line >= self.every_s or self.counters()["remaining"] == 0:
            self._last_line = now
            self.line("progress", subject=summary["subject"], status=summary["status"])

    def close(self, **fields: Any) -> None:
        if self.bar is not None:
            self.bar.close()
        self.line("done", **fields)
