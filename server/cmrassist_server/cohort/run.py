"""One cohort run, as the driver sees it: list the subjects, skip those already done on the same inputs, have
the workers analyse the rest, then write the tables, the review queue and the run record."""

import contextlib
import os
import platform
import subprocess
import time
import uuid
from dataclasses import asdict
from importlib import metadata
from typing import Any, Dict, List, Optional

from cmrassist_server.cohort.analyse import STAGES, AnalysisSettings
from cmrassist_server.cohort.cluster import ClusterSettings, cpu_seconds, ray_session, run_subjects, start_workers
from cmrassist_server.cohort.models import ModelFiles, model_ids
from cmrassist_server.cohort.outputs import CohortOutput
from cmrassist_server.cohort.progress import Progress
from cmrassist_server.cohort.review import store_folder, write_queue
from cmrassist_server.cohort.studies import is_dicomweb, list_subjects, mirror_dicomweb
from cmrassist_server.cohort.table import row_of, write_tables
from cmrassist_server.core.checkpoints import atomic_write_json
from cmrassist_server.core.errors import CMRAssistError


def code_version() -> Dict[str, Any]:
    """The package version and, in a git checkout, the commit (and whether files differ from it)."""
    here = os.path.dirname(os.path.abspath(__file__))
    out: Dict[str, Any] = {"package": None, "commit": None, "dirty": None}
    with contextlib.suppress(metadata.PackageNotFoundError):
        out["package"] = metadata.version("cmrassist")
    try:
        git = ["git", "-C", here]
        out["commit"] = subprocess.run(
            git + ["rev-parse", "HEAD"], capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
        status = subprocess.run(
            git + ["status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        out["dirty"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


class CohortRun:
    """A run over a studies folder into an output folder.

    Args:
        studies: the studies folder.
        out: the output folder (the same one again resumes: only what is missing is done).
        models: the segmentation (and QC) checkpoints.
        settings: how each subject is analysed.
        cluster: where it runs.
        retry_failed: analyse again the subjects that failed on the same inputs before.
        review_store: also put the review queue in the studies folder's QC report store.
    """

    def __init__(
        self,
        studies: str,
        out: str,
        *,
        models: ModelFiles,
        settings: AnalysisSettings,
        cluster: ClusterSettings,
        retry_failed: bool = False,
        review_store: bool = True,
    ):
        self.source, self.models, self.settings, self.cluster = studies, models, settings, cluster
        self.studies = studies if is_dicomweb(studies) else os.path.abspath(studies)
        self.retry_failed = retry_failed
        self.output = CohortOutput(out)
        # The review queue goes into a local studies folder's QC store (a PACS's cache is this run's own).
        self.review_store = store_folder(studies) if review_store and not is_dicomweb(studies) else None
        self.run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.stage_seconds = dict.fromkeys(STAGES, 0.0)
        self.failures: List[Dict[str, str]] = []
        self.ready: Optional[float] = None  # when the workers had their models loaded

    def plan(self, subjects, stamps) -> List:
        """The subjects to analyse now; those that cannot run at all are recorded failed at once."""
        todo = []
        for subject in subjects:
            state = self.output.state(subject.subject_id, stamps[subject.subject_id])
            if state == "done" or (state == "failed" and not self.retry_failed):
                continue
            if subject.problem:
                self.output.write_failure(
                    subject.subject_id,
                    stamps[subject.subject_id],
                    subject.problem,
                    [i.image_id for i in subject.images],
                )
                self.failures.append({"subject": subject.subject_id, "reason": subject.problem})
                continue
            todo.append((subject, stamps[subject.subject_id]))
        return todo

    def _result(self, progress: Progress, stamps: Dict) -> Any:
        def on_result(summary: Dict[str, Any]) -> None:
            if summary.get("worker_died"):
                subject = summary["subject"]
                self.output.write_failure(subject, stamps[subject], summary["reason"], [])
            if summary["status"] == "failed":
                self.failures.append({"subject": summary["subject"], "reason": summary["reason"]})
            for stage, seconds in (summary.get("timings") or {}).items():
                if stage in self.stage_seconds:
                    self.stage_seconds[stage] += seconds
            progress.update(summary)

        return on_result

    def execute(self, *, bar: bool = True, stream=None) -> Dict[str, Any]:
        """Run (or resume) the cohort; returns the run record (also written to ``run.json``)."""
        started = time.time()
        if is_dicomweb(self.source):  # its short-axis cines, mirrored into <out>/dicomweb (new ones fetched)
            self.studies = mirror_dicomweb(self.source, self.output.path("dicomweb"))
        subjects = list_subjects(self.studies)
        if not subjects:
            raise CMRAssistError(f"no images in {self.studies} (NIfTI .nii/.nii.gz or NRRD expected)", 404)
        self.output.clean()
        payloads, described = self.models.snapshot()
        models = model_ids(described)  # a subject done with other models (or without the ensemble) is done again
        stamps = {
            s.subject_id: {"images": s.stamp(), "models": models, "settings": self.settings.stamp()} for s in subjects
        }
        todo = self.plan(subjects, stamps)
        progress = Progress(len(subjects), len(subjects) - len(todo) - len(self.failures), bar=bar, stream=stream)
        for failure in self.failures:
            progress.update({**failure, "status": "failed"})
        record = self._record(described, started)
        progress.line("start", run=self.run_id, out=self.output.out, to_do=len(todo))
        if todo:
            with ray_session(self.cluster) as resources:
                count = min(self.cluster.worker_count(resources), len(todo))
                workers = start_workers(self.cluster, count, self._worker_args(payloads))
                record["cluster"] = {
                    "address": self.cluster.address or "local",
                    "resources": resources,
                    "workers": workers.infos,
                }
                progress.line("workers", workers=len(workers.handles))
                self.ready = time.time()
                run_subjects(workers.handles, todo, self._result(progress, stamps), self.cluster.in_flight)
                for info, cpu in zip(workers.infos, cpu_seconds(workers)):
                    info["cpu_s_analysis"] = cpu
        record.update(self._finish(stamps, progress, started), state="done")
        atomic_write_json(self.output.path("runs", self.run_id + ".json"), record)
        atomic_write_json(self.output.path("run.json"), record)
        progress.close(run=self.run_id, out=self.output.out, review_first=record["review_first"])
        return record

    def _worker_args(self, payloads) -> Dict[str, Any]:
        return {
            "models": payloads,
            "settings": self.settings,
            "out": self.output.out,
            "review_store": self.review_store,
            "run_id": self.run_id,
            "model_files": self.models,
        }

    def _finish(self, stamps: Dict, progress: Progress, started: float) -> Dict[str, Any]:
        rows = [row_of(r) for r in self.output.records(stamps)]
        write_tables(rows, self.output.path("subjects.csv"), self.output.path("subjects.parquet"))
        queue = write_queue(rows, self.output.path("review_queue.csv"))
        end = time.time()
        wall = end - started
        counters = progress.counters()
        total_stage = sum(self.stage_seconds.values())
        analysis = end - self.ready if self.ready else 0.0
        subjects = counters["done"] + counters["failed"]
        return {
            "finished": time.time(),
            "counts": {
                **{k: counters[k] for k in ("total", "done", "failed", "skipped", "frames")},
                "rows_done": sum(r["status"] == "done" for r in rows),
                "rows_failed": sum(r["status"] == "failed" for r in rows),
            },
            "timings": {
                "wall_s": round(wall, 2),
                "frames_per_s": round(counters["frames"] / wall, 3),
                "studies_per_min": round(60 * subjects / wall, 3),
                # From the workers' start (models loaded) to the last result: the steady throughput.
                "startup_s": round(self.ready - started, 2) if self.ready else None,
                "analysis_s": round(analysis, 2),
                "analysis_frames_per_s": round(counters["frames"] / analysis, 3) if analysis else None,
                "analysis_studies_per_min": round(60 * subjects / analysis, 3) if analysis else None,
                "stage_s": {k: round(v, 3) for k, v in self.stage_seconds.items()},
                "stage_share": {
                    k: round(v / total_stage, 4) if total_stage else None for k, v in self.stage_seconds.items()
                },
            },
            "failed": self.failures,
            "review_first": queue[0]["subject"] if queue else None,
        }

    def _record(self, described: Dict[str, Any], started: float) -> Dict[str, Any]:
        """The run record as it starts (``state`` running); finished, it gets counts, timings and failures."""
        record = {
            "run": self.run_id,
            "state": "running",
            "started": started,
            "source": self.source,
            "studies": self.studies,
            "out": self.output.out,
            "models": described,
            "code": code_version(),
            "settings": {
                "analysis": {
                    **self.settings.stamp(),
                    "batch_slices": self.settings.batch_slices,
                    "device": self.settings.device,
                    "amp": self.settings.amp,
                },
                "cluster": asdict(self.cluster),
                "retry_failed": self.retry_failed,
                "review_store": self.review_store,
            },
            "host": platform.node(),
            "cluster": {"address": self.cluster.address or "local", "workers": []},
        }
        atomic_write_json(self.output.path("runs", self.run_id + ".json"), record)
        return record
