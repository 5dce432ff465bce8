#!/usr/bin/env python
"""Cohort throughput: ``cmrassist analyse``'s pipeline with 1 and then 2 Ray workers (back to back, so both see
the same machine load) on ACDC subjects (ED and ES frames) and on phantom cines; time shares of each stage; the
speed-up; and the cost model for 100,000 subjects x 50 frames in 24 hours.

    .venv/bin/python bench/cohort.py --acdc ../shared/acdc/training --model-dir out/release --subjects 20 \\
        --phantoms 8 --frames 30 --workers 1,2

ACDC is read in place (the studies folder holds links to its files and a datastore JSON with their infos).
Models: ``--model-dir``'s ``segmentation.pt`` and ``qc.pt`` (copied first), or freshly initialised networks of the
default architectures for those it lacks (a network's cost does not depend on its weights; post-processing and
QC's rules do a little, so a trained segmentation model gives the truer figure). Throughput is counted from the moment the
workers have their models loaded to the last result (start-up is reported apart).
"""

import argparse
import json
import math
import os
import platform
import shutil
import tempfile
import time

import torch

from cmrassist_server.cohort import AnalysisSettings, ClusterSettings, CohortRun, ModelFiles
from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.io.studies import phantom_studies
from cmrassist_server.qc.network import QCSpec, publish_qc
from cmrassist_server.segmentation.batch import MANIFEST, MEMBERS_FOLDER
from cmrassist_server.segmentation.network import NetworkSpec, publish_segmentation

COHORT_SUBJECTS, COHORT_FRAMES, HOURS = 100_000, 50, 24.0


def acdc_studies(acdc: str, count: int, folder: str) -> None:
    """``count`` ACDC patients spread over the five groups: links to their ED and ES frames, infos in the JSON."""
    from cmrassist_server.io.acdc import find_patients

    numbers = {1 + round(i * 99 / max(1, count - 1)) for i in range(count)}
    objects = {}
    os.makedirs(folder)
    for p in find_patients(acdc, numbers):
        for phase, frame in (("ED", p.ed_frame), ("ES", p.es_frame)):
            image_id = f"{p.name}_{phase.lower()}"
            os.symlink(os.path.abspath(p.frame_path(frame)), os.path.join(folder, image_id + ".nii.gz"))
            info = {
                "patient": p.name,
                "group": p.info.get("Group", ""),
                "phase": phase,
                "frame": frame,
                "ed_frame": p.ed_frame,
                "es_frame": p.es_frame,
            }
            objects[image_id] = {"image": {"ext": ".nii.gz", "info": info}, "labels": {}}
    with open(os.path.join(folder, "datastore_v2.json"), "w") as f:
        json.dump({"name": "acdc-bench", "images_dir": ".", "labels_dir": "labels", "objects": objects}, f)


def bench_models(model_dir: str, folder: str) -> ModelFiles:
    """The models to time: ``model_dir``'s (with its fold ensemble where it ships one), with freshly initialised
    networks of the default architectures where it has none (the networks' cost does not depend on their weights;
    post-processing and QC's rules do a little)."""
    os.makedirs(folder)
    segmentation = os.path.join(model_dir, "segmentation.pt") if model_dir else ""
    if not os.path.isfile(segmentation):
        spec, segmentation = NetworkSpec(), os.path.join(folder, "segmentation.pt")
        publish_segmentation(
            segmentation, spec.build(), spec, PreprocessConfig(), ModelRecord(kind="segmentation", metric="mean")
        )
    qc = os.path.join(model_dir, "qc.pt") if model_dir else ""
    if not os.path.isfile(qc):
        qc = os.path.join(folder, "qc.pt")
        spec = QCSpec(model_inputs=True)  # today's QC: it takes the segmentation pass's view
        publish_qc(qc, spec.build().eval(), PreprocessConfig(), ModelRecord(kind="qc", metric="mae"))
    # Copies: a model a training run replaces meanwhile would give the 1- and 2-worker runs different models.
    for path in (segmentation, qc):
        if not path.startswith(folder):
            shutil.copy(path, os.path.join(folder, os.path.basename(path)))
    if model_dir and os.path.isfile(os.path.join(model_dir, MANIFEST)):  # the fold ensemble: what batch work runs
        shutil.copy(os.path.join(model_dir, MANIFEST), folder)
        shutil.copytree(os.path.join(model_dir, MEMBERS_FOLDER), os.path.join(folder, MEMBERS_FOLDER))
    return ModelFiles.resolve(folder)


def measure(studies: str, models: ModelFiles, workers: int, args, work: str) -> dict:
    """One run from scratch with ``workers`` workers; its run record's timings and counts."""
    out = tempfile.mkdtemp(prefix=f"out{workers}-", dir=work)
    cluster = ClusterSettings(
        workers=workers, cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker
    )
    settings = AnalysisSettings(frames="all", batch_slices=args.batch_slices, device=args.device, amp=not args.no_amp)
    load = os.getloadavg()[0]
    record = CohortRun(studies, out, models=models, settings=settings, cluster=cluster, review_store=False).execute(
        bar=False, stream=None
    )
    t = record["timings"]
    cpu = [w.get("cpu_s_analysis") or 0.0 for w in record["cluster"]["workers"]]
    return {
        "cpu_s": round(sum(cpu), 1),
        "cpu_share_per_worker": round(sum(cpu) / len(cpu) / t["analysis_s"], 2),
        "frames_per_cpu_s": round(record["counts"]["frames"] / sum(cpu), 3) if sum(cpu) else None,
        "workers": workers,
        "subjects": record["counts"]["done"],
        "frames": record["counts"]["frames"],
        "failed": record["counts"]["failed"],
        "frames_per_s": t["analysis_frames_per_s"],
        "studies_per_min": t["analysis_studies_per_min"],
        "startup_s": t["startup_s"],
        "analysis_s": t["analysis_s"],
        "shares": t["stage_share"],
        "stage_s": t["stage_s"],
        "load_1min": load,
        "device": record["cluster"]["workers"][0]["device_name"],
    }


def cost_model(per_worker_fps: float, label: str) -> dict:
    """Workers needed for 100,000 subjects x 50 frames in 24 h at ``per_worker_fps`` (frames/s of one worker)."""
    frames = COHORT_SUBJECTS * COHORT_FRAMES
    needed_fps = frames / (HOURS * 3600)
    return {
        "what": label,
        "frames": frames,
        "frames_per_s_needed": round(needed_fps, 1),
        "per_worker_frames_per_s": round(per_worker_fps, 3),
        "workers_for_24h": math.ceil(needed_fps / per_worker_fps) if per_worker_fps else None,
        "hours_on_one_worker": round(frames / per_worker_fps / 3600, 1) if per_worker_fps else None,
    }


def report(name: str, results: list) -> None:
    print(f"\n{name}")
    print(
        f"{'workers':>7} {'subjects':>8} {'frames':>6} {'frames/s':>9} {'studies/min':>11} {'start-up s':>10} "
        f"{'load':>5} {'core/worker':>11} {'frames/cpu-s':>12}  shares (read/preprocess/network/postprocess/qc/write)"
    )
    for r in results:
        shares = "/".join(f"{100 * (r['shares'][k] or 0):.0f}%" for k in r["shares"])
        print(
            f"{r['workers']:>7} {r['subjects']:>8} {r['frames']:>6} {r['frames_per_s']:>9.2f} "
            f"{r['studies_per_min']:>11.2f} {r['startup_s']:>10.1f} {r['load_1min']:>5.1f} "
            f"{r['cpu_share_per_worker']:>11.2f} {r['frames_per_cpu_s'] or 0:>12.2f}  {shares}"
        )
    if len(results) >= 2 and results[0]["frames_per_s"]:
        print(
            f"speed-up {results[0]['workers']} -> {results[-1]['workers']} workers: "
            f"{results[-1]['frames_per_s'] / results[0]['frames_per_s']:.2f}x"
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", default="", help="ACDC training folder (read in place); without it, phantoms only")
    ap.add_argument("--model-dir", default="", help="served models' folder (segmentation.pt, qc.pt)")
    ap.add_argument("--subjects", type=int, default=20, help="ACDC subjects (ED and ES frames each)")
    ap.add_argument("--phantoms", type=int, default=8, help="phantom subjects with a whole cine")
    ap.add_argument("--frames", type=int, default=30, help="frames of each phantom cine")
    ap.add_argument("--workers", default="1,2", help="worker counts to measure, back to back")
    ap.add_argument("--cpus-per-worker", type=float, default=1.0)
    ap.add_argument("--gpus-per-worker", type=float, default=0.0)
    ap.add_argument("--batch-slices", type=int, default=64)
    ap.add_argument("--device", default=None)
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--json", default="", help="also write the figures here")
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    work = tempfile.mkdtemp(prefix="cohort-bench-")
    models = bench_models(args.model_dir, os.path.join(work, "model"))
    counts = [int(w) for w in args.workers.split(",")]
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, CUDA {torch.cuda.is_available()}; load average {os.getloadavg()}"
    )
    print(
        f"models: {models}; batch {args.batch_slices} slices; {args.cpus_per_worker:g} CPU(s) and "
        f"{args.gpus_per_worker:g} GPU(s) per worker"
    )
    figures = {
        "machine": {"cpus": os.cpu_count(), "node": platform.node(), "cuda": torch.cuda.is_available()},
        "settings": vars(args),
        "runs": {},
    }
    datasets = []
    if args.acdc:
        acdc = os.path.join(work, "acdc")
        acdc_studies(args.acdc, args.subjects, acdc)
        datasets.append((f"ACDC, {args.subjects} subjects, ED and ES frames", acdc))
    if args.phantoms:
        cines = os.path.join(work, "phantoms")
        started = time.time()
        phantom_studies(cines, args.phantoms, seed=1600, labelled_fraction=0.0, with_cine=True, n_frames=args.frames)
        print(f"({args.phantoms} phantom cines of {args.frames} frames written in {time.time() - started:.0f} s)")
        datasets.append((f"phantom cines, {args.phantoms} subjects x {args.frames} frames", cines))
    for name, studies in datasets:
        results = [measure(studies, models, w, args, work) for w in counts]
        report(name, results)
        figures["runs"][name] = results
    last = figures["runs"][datasets[-1][0]]
    best = max(last, key=lambda r: r["workers"])
    model = cost_model(
        best["frames_per_s"] / best["workers"],
        f"CPU worker ({args.cpus_per_worker:g} core), measured on {datasets[-1][0]} with {best['workers']} workers",
    )
    dedicated = cost_model(
        best["frames_per_cpu_s"] or 0.0,
        "a CPU worker with a core of its own (frames per CPU-second "
        "of the same run: what the machine's load took away is not counted)",
    )
    figures["cost_model"] = [model, dedicated]
    print(f"\ncost model ({COHORT_SUBJECTS:,} subjects x {COHORT_FRAMES} frames in {HOURS:g} h):")
    for entry in figures["cost_model"]:
        print(f"  {entry}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
