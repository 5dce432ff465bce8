"""The CPU inference engine: the segmentation network exported to ONNX and compiled by OpenVINO (issue 23).

Picked by measurement (``bench/engine.py``, this 2-core CPU): OpenVINO ran the U-Net's forward pass in about 0.6
of PyTorch eager's time and 0.8 of ONNX Runtime's, with the same logits to 1e-4. PyTorch stays the path for CUDA
and training.

The export lies beside the weights (``segmentation.onnx`` beside ``segmentation.pt``) and names, in its metadata,
the SHA-256 of the checkpoint it was made from: an export that does not match its weights (a site retrained the
model, a file was replaced) is never used; a fresh one is made from the weights and written in its place.
"""

import io
import os
import threading
import warnings
from typing import Optional

import numpy as np
import torch

from cmrassist_server.core.checkpoints import atomic_write_bytes, file_sha256
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.segmentation.network import SegmentationModel

#: The metadata key naming the checkpoint an export was made from.
SOURCE_KEY = "source_sha256"
#: The ONNX operator set of the export (OpenVINO reads it; InstanceNormalization and PRelu are native).
OPSET = 17


def engine_path(checkpoint: str) -> str:
    """Where the export of ``checkpoint`` lies: beside it, ``.onnx`` for ``.pt``."""
    return os.path.splitext(checkpoint)[0] + ".onnx"


def export_engine(model: SegmentationModel, checkpoint: str, digest: Optional[str] = None) -> str:
    """Export ``model`` (loaded from ``checkpoint``) to ONNX beside it, atomically; returns the export's path.

    Args:
        model: the loaded network (on the CPU).
        checkpoint: its file.
        digest: the SHA-256 of the bytes ``model`` was loaded from (the file's now, when not given), recorded in
            the export.
    """
    import onnx

    network = model.network.eval()
    example = torch.zeros(2, model.spec.in_channels, 64, 64)
    buffer = io.BytesIO()
    axes = {0: "slices", 2: "height", 3: "width"}
    with warnings.catch_warnings():  # the exporter's notes (legacy exporter, instance norm) say nothing to a user
        warnings.simplefilter("ignore")
        _export(network, example, buffer, axes)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, {SOURCE_KEY: digest or file_sha256(checkpoint)})
    path = engine_path(checkpoint)
    atomic_write_bytes(path, proto.SerializeToString())
    return path


def _export(network: torch.nn.Module, example: torch.Tensor, buffer: io.BytesIO, axes: dict) -> None:
    torch.onnx.export(
        network,
        (example,),
        buffer,
        dynamo=False,  # the TorchScript exporter: no onnxscript, dynamic slice count and window size
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": axes, "logits": axes},
        opset_version=OPSET,
    )


class OpenVinoEngine:
    """The exported network compiled by OpenVINO for this CPU: logits of ``(slices, C, H, W)`` inputs.

    Args:
        path: the export (``segmentation.onnx``).
        threads: inference threads (``None``: torch's setting in this process, so a background run set to one thread
            keeps to it).
        source: the SHA-256 of the weights the export must have been made from (refused otherwise).
    """

    def __init__(self, path: str, threads: Optional[int] = None, *, source: Optional[str] = None):
        import onnx
        import openvino

        try:
            with open(path, "rb") as f:
                data = f.read()  # once: the metadata and the network compiled are of the same file
            props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
        except Exception as e:  # onnx raises its own types for damaged files
            raise CMRAssistError(f"inference engine {os.path.basename(path)!r} cannot be loaded: {e}", 409) from None
        self.source_sha256 = props.get(SOURCE_KEY)
        if source is not None and self.source_sha256 != source:  # checked before the costly compile
            raise CMRAssistError(f"inference engine {os.path.basename(path)!r} was exported from other weights", 409)
        settings = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}  # FP32, as trained
        # No pinning: OpenVINO pins its threads to cores by default, so two processes of one thread each (cohort
        # workers, a server beside a background run) landed on the same core and each got half of it.
        settings["ENABLE_CPU_PINNING"] = False
        settings["INFERENCE_NUM_THREADS"] = threads or torch.get_num_threads()
        try:
            core = openvino.Core()
            compiled = core.compile_model(core.read_model(data), "CPU", settings)
        except Exception as e:  # OpenVINO raises its own types for networks it cannot compile
            raise CMRAssistError(f"inference engine {os.path.basename(path)!r} cannot be loaded: {e}", 409) from None
        self.request = compiled.create_infer_request()
        self.lock = threading.Lock()  # one infer request: the server's threads take turns, as the CPU's cores do

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        image = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        with self.lock:
            logits = self.request.infer({0: image})[0]
        return torch.from_numpy(np.array(logits))


def cpu_engine(model: SegmentationModel, checkpoint: str, digest: str) -> OpenVinoEngine:
    """The engine of ``model``, loaded from ``checkpoint`` whose bytes had SHA-256 ``digest``: the export beside it
    when made from those very weights, else a fresh export.

    Raises:
        CMRAssistError (409): the export cannot be made or loaded.
    """
    path = engine_path(checkpoint)
    if os.path.isfile(path):
        try:
            return OpenVinoEngine(path, source=digest)
        except CMRAssistError:
            pass  # a stale or damaged export is replaced below
    return OpenVinoEngine(export_engine(model, checkpoint, digest))
