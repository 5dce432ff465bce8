#!/usr/bin/env python
"""The heart-sized window against the full window (issue 23, item 2): per-volume Dice and HD95 by class, clinical
errors, time per frame and how often the window fell back to the full one, on ACDC patients the model never saw
(the shipped model's 20 held-out patients by default; a CV fold model with its fold's ``--patients``).

    .venv/bin/python bench/heart_window.py --acdc ../shared/acdc/training --model models/segmentation.pt
"""

import argparse
import os
import platform

import numpy as np
import torch

from cmrassist_server.segmentation.heldout import HELD_OUT, evaluate_acdc, format_summary
from cmrassist_server.segmentation.predictor import SegmentationPredictor


class CountingPredictor(SegmentationPredictor):
    """The predictor, counting frames whose heart window fell back to the full window."""

    fallbacks = 0
    frames = 0

    def locate_heart(self, channels, shape, orientation):
        heart = super().locate_heart(channels, shape, orientation)
        self.frames += 1
        self.fallbacks += heart is None
        return heart


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--acdc", default="../shared/acdc/training")
    ap.add_argument("--model", default="models/segmentation.pt")
    ap.add_argument("--patients", default="", help="comma-separated patient numbers (default: the 20 held out)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    patients = [int(p) for p in args.patients.split(",")] if args.patients else list(HELD_OUT)
    print(
        f"# {platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads; {args.model}; {len(patients)} patients"
    )
    for heart_window in (False, True):
        predictor = CountingPredictor(args.model, device="cpu", heart_window=heart_window)
        result = evaluate_acdc(predictor, args.acdc, patients)
        name = "heart window" if heart_window else "full window"
        seconds = np.median(result["seconds_per_volume"])
        fell_back = f", fell back on {predictor.fallbacks} of {predictor.frames} frames" if heart_window else ""
        print(f"\n## {name}: {1000 * seconds:.0f} ms per volume (median, read to label){fell_back}")
        print(format_summary(result))
        print("clinical MAE:", {k: round(v, 2) for k, v in result["clinical_mae"].items()})


if __name__ == "__main__":
    main()
