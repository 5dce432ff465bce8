#!/usr/bin/env python
"""The segmentation network's forward pass per 10-slice frame by engine (OpenVINO as served; PyTorch eager and
channels-last, ONNX Runtime where installed, torch.compile with ``--compile``) and window (192 x 192, the full
window; 144 x 144, the heart window), with the network's GFLOP (``torch.utils.flop_counter``), the GFLOP/s
reached and its ratio to this machine's FP32 matmul measured in the same process (issue 23). Run it on a quiet
machine.

    .venv/bin/python bench/engine.py --model models/segmentation.pt --threads 2
"""

import argparse
import os
import platform
import shutil
import tempfile
import time
from functools import partial
from typing import Callable, Dict

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from cmrassist_server.segmentation.engine import OpenVinoEngine, export_engine
from cmrassist_server.segmentation.heart_window import HEART_WINDOW
from cmrassist_server.segmentation.network import load_segmentation


def median_ms(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``run`` in ms after two warm-up calls."""
    run(), run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """This machine's FP32 matmul rate (GFLOP/s) with the threads set: the ceiling the network is compared with."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / (median_ms(lambda: a @ b, repeats) / 1000) / 1e9


def engines(checkpoint: str, threads: int, compiled: bool) -> Dict[str, Callable[[torch.Tensor], object]]:
    """Each engine as a function of a ``(slices, C, H, W)`` batch: the served one (OpenVINO) and the candidates."""
    model = load_segmentation(checkpoint)
    eager = model.network.eval()
    folder = tempfile.mkdtemp(prefix="engine-")
    copy = os.path.join(folder, "segmentation.pt")
    shutil.copyfile(checkpoint, copy)
    export = export_engine(model, copy)
    channels_last = load_segmentation(checkpoint).network.eval().to(memory_format=torch.channels_last)
    runs = {
        "pytorch eager": eager,
        "pytorch channels-last": lambda x: channels_last(x.contiguous(memory_format=torch.channels_last)),
        "openvino (served)": OpenVinoEngine(export),
    }
    try:  # a candidate the project does not install: measured where it is
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = onnxruntime.InferenceSession(export, options, providers=["CPUExecutionProvider"])
        runs["onnx runtime"] = lambda x: session.run(None, {"image": x.numpy()})
    except ImportError:
        print("# onnx runtime: not installed (pip install onnxruntime==1.32.0 to compare)")
    if compiled:
        runs["torch.compile"] = torch.compile(load_segmentation(checkpoint).network.eval())
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/segmentation.pt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slices", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--compile", action="store_true", help="also torch.compile (a minute of compiling per window)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_gflops()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads"
    print(
        f"# {machine}, torch {torch.__version__}; FP32 matmul {peak:.0f} GFLOP/s; {args.slices}-slice frame; "
        f"median of {args.repeats}"
    )
    runs = engines(args.model, args.threads, args.compile)
    channels = load_segmentation(args.model).spec.in_channels
    print(f"{'window':>8s} {'GFLOP':>7s} {'engine':>22s} {'ms':>8s} {'GFLOP/s':>8s} {'of matmul':>9s}")
    for window in (192, HEART_WINDOW):
        x = torch.randn(args.slices, channels, window, window)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            runs["pytorch eager"](x)
        gflop = counter.get_total_flops() / 1e9
        for name, run in runs.items():
            with torch.no_grad():
                ms = median_ms(partial(run, x), args.repeats)
            rate = gflop / (ms / 1000)
            print(f"{window:>8d} {gflop:7.2f} {name:>22s} {ms:8.1f} {rate:8.1f} {rate / peak:9.0%}")


if __name__ == "__main__":
    main()
