#!/usr/bin/env python
"""Latency of one-click segmentation over HTTP on 127.0.0.1, and start-up time of ``make serve``.

    .venv/bin/python bench/latency.py --acdc ../shared/acdc/training --model out/segmentation_acdc/segmentation.pt

Without ``--model`` a freshly initialised network of the default architecture is published (the cost of a
forward pass does not depend on the weights). Without ``--acdc`` a 10-slice phantom ED frame is used.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time

import numpy as np
import torch

from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.io.studies import StudiesWriter
from cmrassist_server.launcher import RunningServer, free_port, wait_for_info
from cmrassist_server.qc.network import QCSpec, publish_qc
from cmrassist_server.segmentation.network import NetworkSpec, publish_segmentation
from CMRAssistLib.client import CMRAssistClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def study_with_one_ed_frame(folder: str, acdc: str, extra: int = 0) -> str:
    """The timed frame (``bench_ed``; ``bench_es`` beside it) and, from ACDC, four labelled patients a training run
    can work on and ``extra`` more unlabelled patients' ED and ES frames (work for a QC scoring pass)."""
    writer = StudiesWriter(folder)
    if acdc:
        from cmrassist_server.io.acdc import find_patients

        p = find_patients(acdc, {61})[0]  # 10-slice NOR patient
        for q in find_patients(acdc, set(range(2, 2 + extra)) - {21, 41, 61, 81}):
            for phase, frame in (("ed", q.ed_frame), ("es", q.es_frame)):
                writer.add_image(f"{q.name}_{phase}", q.frame_path(frame), {"phase": phase.upper()})
        for q in find_patients(acdc, {1, 21, 41, 81}):  # labelled studies a training run can work on
            for phase, frame in (("ed", q.ed_frame), ("es", q.es_frame)):
                writer.add_image(f"{q.name}_{phase}", q.frame_path(frame), {"phase": phase.upper()})
                writer.add_label(f"{q.name}_{phase}", q.frame_path(frame, gt=True), {"annotator": "ACDC"})
        writer.add_image("bench_es", p.frame_path(p.es_frame), {"phase": "ES"})
        return writer.add_image("bench_ed", p.frame_path(p.ed_frame), {"phase": "ED"})
    from cmrassist_server.io.phantoms import make_phantom

    seed = next(s for s in range(100) if make_phantom(s, with_cine=False).anatomy.n_slices == 10)
    writer.add_image("bench_es", make_phantom(seed, with_cine=False).es_image, {"phase": "ES"})
    return writer.add_image("bench_ed", make_phantom(seed, with_cine=False).ed_image, {"phase": "ED"})


def timed_requests(client: CMRAssistClient, image_id: str, work: str, n: int) -> list:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.infer(image_id, work)
        times.append(time.perf_counter() - t)
    return times


def wait_for_scoring(client: CMRAssistClient, timeout: float = 600) -> float:
    """Wait until no scoring run works (the QC scoring a server starts after start-up); returns the seconds waited.
    Quiet figures are taken after it: it shares the CPU with the requests while it runs."""
    start = time.time()
    while client.scoring_status().get("status") == "RUNNING" and time.time() - start < timeout:
        time.sleep(1)
    return time.time() - start


def qc_of_subject(client: CMRAssistClient, image_ids: list, n: int) -> dict:
    """``POST /infer/qc`` of the model's own prediction of each frame of a subject (ED and ES), ``n`` times: the
    whole request, and the server's own split of it into the segmentation pass and the QC beyond it."""
    total, segmentation, qc = [], [], []
    for _ in range(n):
        t = time.perf_counter()
        reports = [client.quality(image_id) for image_id in image_ids]
        total.append(time.perf_counter() - t)
        segmentation.append(sum(r["seconds"]["segmentation"] for r in reports))
        qc.append(sum(r["seconds"]["qc"] for r in reports))
    return {
        "request_s": float(np.median(total)),
        "segmentation_s": float(np.median(segmentation)),
        "qc_beyond_segmentation_s": float(np.median(qc)),
        "qc_p95_s": float(np.percentile(qc, 95)),
    }


def install_qc(model_dir: str, qc_model: str) -> None:
    """The QC the server checks with: ``qc_model``, else a freshly initialised QC of the default architecture that
    takes the segmentation pass's view (its cost does not depend on its weights)."""
    path = os.path.join(model_dir, "qc.pt")
    if qc_model:
        shutil.copy(qc_model, path)
        return
    spec = QCSpec(model_inputs=True)
    publish_qc(path, spec.build().eval(), PreprocessConfig(), ModelRecord(kind="qc", metric="mae"))


def during_scoring(client: CMRAssistClient, image_id: str, work: str, n: int) -> list:
    """Requests timed while the QC scoring pass that follows start-up runs (every stored frame checked in the
    background); at most ``n``, stopping when the pass ends."""
    times = []
    while client.scoring_status().get("status") == "RUNNING" and len(times) < n:
        times += timed_requests(client, image_id, work, 1)
    return times


def during_training(client: CMRAssistClient, image_id: str, work: str, n: int) -> list:
    """Requests timed while ``POST /train/segmentation`` works (its child process at lower CPU priority)."""
    client.train_start("segmentation", max_epochs=1000, max_minutes=10)
    deadline = time.time() + 300
    while client.train_status().epoch < 1 and time.time() < deadline:  # past loading, into the epochs
        time.sleep(2)
    try:
        return timed_requests(client, image_id, work, n)
    finally:
        client.train_stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--acdc", default="", help="ACDC training folder (uses patient061's ED frame)")
    ap.add_argument("--model", default="", help="checkpoint to serve")
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--skip-make", action="store_true", help="do not time `make serve`")
    ap.add_argument("--engine", default="auto", choices=("auto", "torch"), help="the server's CPU engine setting")
    ap.add_argument("--qc", action="store_true", help="also time the QC of the subject's prediction (ED and ES)")
    ap.add_argument(
        "--qc-model", default="", help="with --qc: the QC checkpoint (default: a fresh one of today's view)"
    )
    ap.add_argument(
        "--during-scoring",
        type=int,
        default=0,
        metavar="N",
        help="also time requests during the start-up QC scoring of N more ACDC patients' frames (needs --acdc)",
    )
    ap.add_argument(
        "--during-training",
        action="store_true",
        help="also time requests while a training run works in the server's child process (needs --acdc)",
    )
    args = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="latency-")
    studies, model_dir = os.path.join(work, "studies"), os.path.join(work, "model")
    image_id = study_with_one_ed_frame(studies, args.acdc, args.during_scoring)
    ckpt = os.path.join(model_dir, "segmentation.pt")
    if args.model:
        os.makedirs(model_dir)
        shutil.copy(args.model, ckpt)
    else:
        spec = NetworkSpec()
        publish_segmentation(
            ckpt, spec.build(), spec, PreprocessConfig(), ModelRecord(kind="segmentation", metric="mean")
        )
    if args.qc:
        install_qc(model_dir, args.qc_model)
    srv = RunningServer(studies, model_dir, os.path.join(work, "server.log"), ["--conf", "engine", args.engine])
    try:
        client = CMRAssistClient(srv.url, timeout=60)
        for _ in range(3):
            client.infer(image_id, work)
        scoring = during_scoring(client, image_id, work, 10 * args.requests) if args.during_scoring else None
        waited = wait_for_scoring(client)
        times = timed_requests(client, image_id, work, args.requests)
        busy = during_training(client, image_id, work, args.requests) if args.during_training else None
        subject = qc_of_subject(client, [image_id, "bench_es"], args.requests) if args.qc else None
    finally:
        srv.stop()
    import SimpleITK as sitk

    size = sitk.ReadImage(client_path(studies)).GetSize()
    print(
        f"POST /infer/segmentation, one ED frame {size} ({'ACDC patient061' if args.acdc else 'phantom'}), "
        f"{args.requests} requests after 3 warm-up and the start-up QC scoring ({waited:.0f} s more):"
    )
    print(
        f"  median {np.median(times) * 1000:.0f} ms   p95 {np.percentile(times, 95) * 1000:.0f} ms   "
        f"min {min(times) * 1000:.0f} ms"
    )
    result = {"median_s": float(np.median(times)), "p95_s": float(np.percentile(times, 95)), "image_size": size}
    if args.during_scoring and not scoring:
        print("  during the start-up QC scoring: none timed (it ended before the warm-up did; give more frames)")
    if scoring:
        print(
            f"  during the start-up QC scoring ({len(scoring)} requests): median {np.median(scoring) * 1000:.0f} ms"
            f"   p95 {np.percentile(scoring, 95) * 1000:.0f} ms   ({np.median(scoring) / np.median(times):.2f}x the "
            "quiet median)"
        )
        result["during_scoring_median_s"] = float(np.median(scoring))
    if busy:
        print(
            f"  while training runs: median {np.median(busy) * 1000:.0f} ms   p95 "
            f"{np.percentile(busy, 95) * 1000:.0f} ms   ({np.median(busy) / np.median(times):.2f}x the quiet median)"
        )
        result["during_training_median_s"] = float(np.median(busy))
    if subject:
        print(
            f"  POST /infer/qc of the prediction, ED+ES: request {subject['request_s'] * 1000:.0f} ms = segmentation "
            f"{subject['segmentation_s'] * 1000:.0f} ms + QC beyond it {subject['qc_beyond_segmentation_s'] * 1000:.0f}"
            f" ms (p95 {subject['qc_p95_s'] * 1000:.0f}) + transfer and bookkeeping"
        )
        result["qc_subject"] = subject
    if not args.skip_make:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MONAI")}
        t = time.time()
        proc = subprocess.Popen(
            ["make", "-s", "serve", f"STUDIES={studies}", f"MODEL_DIR={model_dir}", f"PORT={port}"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            waited = wait_for_info(f"http://127.0.0.1:{port}", 180, proc)
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(20)
        print(f"`make serve` (prepared venv) to first answered /info/: {time.time() - t:.1f} s")
        result["make_serve_to_info_s"] = waited
    result["setting"] = {
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "model": args.model or "freshly initialised default unet",
        "engine": args.engine,
        "qc_model": (args.qc_model or "freshly initialised, segmentation-pass view") if args.qc else None,
    }
    print("setting: " + json.dumps(result["setting"]))
    shutil.rmtree(work, ignore_errors=True)
    return result


def client_path(studies):
    return os.path.join(studies, "bench_ed" + (".nii.gz"))


if __name__ == "__main__":
    main()
