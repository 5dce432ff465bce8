"""Ray: join a running cluster (``--address``) or start one on this machine, start the model workers, and keep
each busy with subjects until none are left.

Design: Ray actors, one per worker slot (``num_cpus`` / ``num_gpus`` each), each loading the models once and
taking whole subjects; within a subject the network takes batches of slices gathered over its frames. Each
actor runs two calls at a time so that one subject is read and written while the other computes. Subjects, not
slices, are the unit of scheduling because everything after the network is per subject (its QC, measures,
checks and atomic outputs), and a failed subject must fail alone.
"""

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

from cmrassist_server.core.errors import CMRAssistError

NAMESPACE = "cmrassist-cohort"


@dataclass(frozen=True)
class ClusterSettings:
    """Where and how wide a run goes.

    Args:
        address: a running cluster (``HOST:PORT`` of its head, ``ray://HOST:PORT`` for Ray Client, ``auto``);
            ``None`` starts Ray on this machine with all its cores (and GPUs).
        workers: model workers; by default as many as the cluster's CPUs (or GPUs) allow.
        cpus_per_worker: CPUs each worker reserves (its torch threads).
        gpus_per_worker: GPUs each worker reserves (0: CPU workers).
        object_store_mb: object store of a Ray started here (subjects and results are small).
        in_flight: subjects a worker holds at once (2: one reads or writes while the other computes).
    """

    address: Optional[str] = None
    workers: Optional[int] = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    object_store_mb: int = 200
    in_flight: int = 2

    def worker_count(self, resources: Dict[str, float]) -> int:
        """Workers to start on a cluster with ``resources`` (Ray's ``cluster_resources()``)."""
        if self.gpus_per_worker > 0:
            fit = int(resources.get("GPU", 0) // self.gpus_per_worker)
            if fit == 0:
                raise CMRAssistError(f"--gpus-per-worker {self.gpus_per_worker:g}: the Ray cluster has no GPU", 409)
        else:
            fit = int(resources.get("CPU", 0) // self.cpus_per_worker)
        if self.workers:
            return self.workers
        if fit == 0:
            raise CMRAssistError(f"the Ray cluster has fewer than {self.cpus_per_worker:g} CPUs for one worker", 409)
        return fit


@contextlib.contextmanager
def ray_session(cluster: ClusterSettings) -> Iterator[Dict[str, float]]:
    """Ray joined (or started here) for the duration; yields the cluster's resources."""
    import ray

    common = {"namespace": NAMESPACE, "log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if cluster.address:
            ray.init(address=cluster.address, **common)
        else:
            ray.init(
                num_cpus=os.cpu_count(),
                include_dashboard=False,
                object_store_memory=cluster.object_store_mb * 1024 * 1024,
                **common,
            )
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError ... for an unusable address
        where = f"join the Ray cluster at {cluster.address}" if cluster.address else "start Ray on this machine"
        first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        hint = (
            (
                " (a cluster with token authentication needs RAY_AUTH_MODE=token and its token in RAY_AUTH_TOKEN "
                "or ~/.ray/auth_token)"
            )
            if cluster.address and "RAY_AUTH_MODE" not in os.environ
            else ""
        )
        raise CMRAssistError(f"cannot {where}: {first}{hint}", 503) from None
    try:
        yield ray.cluster_resources()
    finally:
        ray.shutdown()


@dataclass
class Workers:
    """Started workers: their actor handles, where each runs, and the models' object (kept referenced while
    they run: a restarted worker reads its arguments again)."""

    handles: List[Any]
    infos: List[Dict[str, Any]]
    models: Any


def start_workers(cluster: ClusterSettings, count: int, worker_args: Dict[str, Any]) -> Workers:
    """``count`` worker actors, spread over the cluster's nodes, once each has loaded its models.

    Raises:
        CMRAssistError (500): a worker could not start (the models do not load there, a missing package, ...).
    """
    import ray

    from cmrassist_server.cohort.worker import CohortWorker

    remote = ray.remote(CohortWorker).options(
        num_cpus=cluster.cpus_per_worker,
        num_gpus=cluster.gpus_per_worker,
        max_concurrency=cluster.in_flight,
        max_restarts=2,
        scheduling_strategy="SPREAD",
    )
    threads = max(1, int(cluster.cpus_per_worker))
    models = ray.put(worker_args.pop("models"))
    workers = [remote.remote(models, threads=threads, **worker_args) for _ in range(count)]
    try:
        infos = ray.get([w.info.remote() for w in workers])
    except Exception as e:
        raise CMRAssistError(f"a cohort worker could not start: {str(e).strip().splitlines()[-1]}", 500) from None
    return Workers(workers, infos, models)


def cpu_seconds(workers: Workers) -> List[Optional[float]]:
    """CPU seconds each worker process used since it started (its models loaded): how much of its cores the
    machine's load let it have. ``None`` for a worker that no longer answers."""
    import ray

    out: List[Optional[float]] = []
    for worker, started in zip(workers.handles, workers.infos):
        try:
            out.append(round(ray.get(worker.info.remote(), timeout=30)["cpu_s"] - started["cpu_s"], 3))
        except Exception:  # a dead or restarted worker: its count is lost
            out.append(None)
    return out


def run_subjects(workers: List[Any], jobs: List[Any], on_result: Callable[[Dict[str, Any]], None], in_flight: int):
    """Keep every worker busy with ``in_flight`` subjects until ``jobs`` (``(subject, stamp)`` pairs) are done.

    A worker process that dies takes only its subjects with it: they are reported failed, and Ray restarts the
    worker (twice); a worker that keeps dying gets no more subjects.
    """
    import ray

    queue = list(reversed(jobs))
    pending: Dict[Any, Any] = {}
    deaths = [0] * len(workers)

    def submit(i: int) -> None:
        if queue and deaths[i] <= 2:
            subject, stamp = queue.pop()
            pending[workers[i].analyse.remote(subject, stamp)] = (i, subject)

    for i in range(len(workers)):
        for _ in range(in_flight):
            submit(i)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        i, subject = pending.pop(ready[0])
        try:
            summary = ray.get(ready[0])
        except Exception as e:  # the worker died (or Ray lost its result): this subject fails, the run goes on
            deaths[i] += 1
            reason = f"worker failed while analysing it: {str(e).strip().splitlines()[0]}"
            summary = {"subject": subject.subject_id, "status": "failed", "reason": reason, "worker_died": True}
        on_result(summary)
        submit(i)
    if queue:
        raise CMRAssistError(f"every worker kept dying; {len(queue)} subjects were left for the next run", 500)
