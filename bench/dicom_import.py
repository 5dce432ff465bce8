"""DICOM cine import and study report timings (issue 15).

Writes realistic short-axis cines (phantoms: 30 phases x 14 slices, one series per slice location, shuffled file
names) and measures: import from local disk (``import_dicom``), import from a real Orthanc over DICOMweb (the
PACS datastore's sync on an empty cache), the import of ``--studies`` such cines in one folder, and the report
(measures, QC rules, PDF) per study. Prints the figures with the machine and settings.

    .venv/bin/python bench/dicom_import.py --studies 100 --work /tmp/cmrassist-bench
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time

import numpy as np
import SimpleITK as sitk

from cmrassist_server.io.dicom.dicomweb import DicomWebCineDatastore
from cmrassist_server.io.dicom.importer import import_dicom
from cmrassist_server.io.dicom.orthanc import RunningOrthanc
from cmrassist_server.io.dicom.writer import study_header, write_cine
from cmrassist_server.io.phantoms import make_phantom, render_frame
from cmrassist_server.io.studies import StudiesWriter, label_info
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.reporting.render import render
from cmrassist_server.reporting.report import build_report
from cmrassist_server.reporting.study import study_data


def cine_30x14(seed: int, phases: int):
    """A phantom with 14 slices (seed chosen so), its cine and per-frame labels."""
    p = make_phantom(seed, n_frames=phases)
    labels = np.stack([render_frame(p.anatomy, t, np.random.default_rng(t))[1] for t in range(phases)])
    return p, labels.astype(np.uint8)


def write_study(p, folder: str, seed: int, layout: str) -> int:
    rng = np.random.default_rng(seed)
    header = study_header(rng, patient_id=f"B{seed:04d}", height_cm=170 + seed % 20, weight_kg=60 + seed % 30)
    return len(write_cine(p.cine, folder, layout=layout, header=header, rng=rng))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def bench_one(p, work: str, layout: str) -> dict:
    src = os.path.join(work, f"one_{layout}")
    files = write_study(p, src, 1, layout)
    result, local_s = timed(import_dicom, src, os.path.join(work, f"one_{layout}_studies"))
    out = {"layout": layout, "files": files, "local_s": round(local_s, 2)}
    orthanc = RunningOrthanc(os.path.join(work, f"orthanc_{layout}"))
    try:
        paths = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs]
        _, upload_s = timed(orthanc.upload, paths)
        store, pacs_s = timed(DicomWebCineDatastore, orthanc.dicomweb, os.path.join(work, f"cache_{layout}"))
        assert sorted(store.list_images()) == sorted(result["images"])
        out.update({"orthanc_upload_s": round(upload_s, 2), "dicomweb_import_s": round(pacs_s, 2)})
    finally:
        orthanc.stop()
    return out


def bench_many(p, labels, work: str, n: int) -> dict:
    src, dst = os.path.join(work, "many"), os.path.join(work, "many_studies")
    for i in range(n):
        write_study(p, os.path.join(src, f"study{i:03d}"), 100 + i, "series_per_slice")
    result, seconds = timed(import_dicom, src, dst)
    writer = StudiesWriter(dst)
    cines = [i for i in result["images"] if i.endswith("_cine")]
    reports = []
    for cine_id in cines[: min(len(cines), 10)]:
        label = sitk.JoinSeries([sitk.GetImageFromArray(f) for f in labels])
        label.CopyInformation(sitk.ReadImage(writer.datastore.get_image_uri(cine_id)))
        writer.add_label(cine_id, label, label_info("bench", "expert"))
        start = time.perf_counter()
        data = study_data(writer.datastore, cine_id)
        report = build_report(data, QualityChecker(None))
        render(data, report, "pdf")
        reports.append(time.perf_counter() - start)
    return {
        "studies": len(cines),
        "import_s": round(seconds, 1),
        "per_study_s": round(seconds / max(1, len(cines)), 2),
        "report_pdf_s_mean": round(float(np.mean(reports)), 2),
        "report_pdf_s_max": round(float(np.max(reports)), 2),
        "reports_timed": len(reports),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=100)
    ap.add_argument("--phases", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1, help="phantom seed (1 gives 14 slices of 258x202)")
    ap.add_argument("--work", default="/tmp/cmrassist-bench-dicom")
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    p, labels = cine_30x14(args.seed, args.phases)
    size = p.cine.GetSize()
    setting = {
        "cine": f"{size[3]} phases x {size[2]} slices of {size[0]}x{size[1]}",
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
    }
    print(json.dumps(setting))
    for layout in ("series_per_slice", "single_series", "enhanced"):
        print(json.dumps(bench_one(p, args.work, layout)), flush=True)
    print(json.dumps(bench_many(p, labels, args.work, args.studies)), flush=True)
    shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
