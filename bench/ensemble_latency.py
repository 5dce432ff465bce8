"""Bench: seconds per 10-slice frame of one model, the 5-fold ensemble, and the ensemble with flips (issue 25:
which one serves one-click within 0.3 s, which one batch work uses). In process, on ACDC patient061's ED frame
(10 slices); the members are freshly initialised networks of the shipped architecture (the cost of a forward pass
does not depend on the weights), or the fold models of a CV run (``--state``).

Run: ``.venv/bin/python bench/ensemble_latency.py --acdc ../shared/acdc/training [--state DIR] [--repeats 10]``
"""

import argparse
import glob
import os
import platform
import statistics
import tempfile
import time

import SimpleITK as sitk
import torch

from cmrassist_server.core.checkpoints import ModelRecord
from cmrassist_server.imaging.preprocess import PreprocessConfig
from cmrassist_server.io.acdc import find_patients
from cmrassist_server.segmentation.ensemble import EnsemblePredictor
from cmrassist_server.segmentation.network import NetworkSpec, publish_segmentation
from cmrassist_server.segmentation.predictor import SegmentationPredictor


def members(folder: str, state: str, count: int = 5) -> list:
    """The fold models of ``state`` (2.5d variant), else ``count`` fresh networks of the shipped architecture."""
    found = sorted(glob.glob(os.path.join(state, "2.5d", "fold*", "segmentation.pt"))) if state else []
    if found:
        return found
    paths, spec = [], NetworkSpec(in_channels=3)
    for k in range(count):
        torch.manual_seed(k)
        path = os.path.join(folder, f"fold{k}.pt")
        record = ModelRecord("segmentation", "mean")
        publish_segmentation(path, spec.build(), spec, PreprocessConfig(neighbour_slices=1), record)
        paths.append(path)
    return paths


def seconds(predictor, image: sitk.Image, repeats: int) -> float:
    predictor.segment(image)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.segment(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--acdc", default="../shared/acdc/training")
    ap.add_argument("--state", default="", help="a CV run's folder: time its fold models")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    patient = find_patients(args.acdc, {61})[0]
    image = sitk.ReadImage(patient.frame_path(patient.ed_frame))
    with tempfile.TemporaryDirectory() as folder:
        paths = members(folder, args.state)
        machine = f"{platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
        print(f"# {machine}; frame {image.GetSize()}; {len(paths)} members; median of {args.repeats}")
        for name, predictor in (
            ("one model", SegmentationPredictor(paths[0], device="cpu")),
            (f"ensemble of {len(paths)}", EnsemblePredictor(paths, device="cpu", flips=False)),
            (f"ensemble of {len(paths)} + flips", EnsemblePredictor(paths, device="cpu", flips=True)),
        ):
            print(f"{name:24s} {seconds(predictor, image, args.repeats):6.3f} s per frame")


if __name__ == "__main__":
    main()
