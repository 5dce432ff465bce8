"""Model cards and checksums of the shipped models (``models/<model>.md``, ``models/SHA256SUMS``)."""

import json
import os
import time
from pathlib import Path
from typing import Callable, Dict

from cmrassist_server.core.checkpoints import atomic_write, file_sha256, read_record
from cmrassist_server.core.training import TrainResult
from cmrassist_server.io.acdc import acdc_items
from cmrassist_server.qc.check import QualityChecker
from cmrassist_server.qc.heldout import evaluate_qc_acdc, format_qc_summary
from cmrassist_server.release.shipped import CHECKSUMS, read_checksums
from cmrassist_server.segmentation.engine import export_engine
from cmrassist_server.segmentation.heldout import evaluate_acdc, format_summary
from cmrassist_server.segmentation.network import load_segmentation
from cmrassist_server.segmentation.predictor import SegmentationPredictor
from cmrassist_server.slice_position.data import label_positions, labelled_stacks
from cmrassist_server.slice_position.network import load_position
from cmrassist_server.slice_position.training import evaluate_position

LICENCE = (
    "Research use only; not a medical device. Trained on the ACDC training set (University Hospital of Dijon), "
    'which must be cited by any use: O. Bernard, A. Lalande, C. Zotti, F. Cervenansky, et al., "Deep Learning '
    'Techniques for Automatic MRI Cardiac Multi-structures Segmentation and Diagnosis: Is the Problem Solved?", '
    "IEEE TMI 37(11):2514-2525, 2018, doi:10.1109/TMI.2018.2837502. Code: Apache-2.0."
)
PURPOSE = {
    "segmentation": "LV cavity (3), LV myocardium (2) and RV cavity (1) of short-axis cine MRI frames, slice by slice "
    "(2.5D: each slice with its two neighbours).",
    "slice_position": "Whether each short-axis slice lies too basal, in the LV or too apical, with a continuous "
    "position (0 at the base, 1 at the apex), by the published definitions applied to expert labels.",
    "qc": "Quality control without ground truth: per slice and class, the Dice and volume similarity a segmentation "
    "would score against an expert, from the image, the segmentation and the segmentation model's own belief.",
}


def update_checksum(folder: str, name: str) -> str:
    """Write ``name``'s SHA-256 into ``folder/SHA256SUMS`` (``sha256sum -c`` format); returns the digest."""
    path = os.path.join(folder, CHECKSUMS)
    lines = read_checksums(folder)
    lines[name] = file_sha256(os.path.join(folder, name))
    text = "".join(f"{digest}  {file}\n" for file, digest in sorted(lines.items()))
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))  # a crash never leaves every model unverifiable
    return lines[name]


def _segmentation_figures(plan, checkpoint: str) -> str:
    result = evaluate_acdc(SegmentationPredictor(checkpoint, device=plan.device), plan.acdc, plan.held_out())
    return (
        "Per volume (each ED or ES frame scored alone, then averaged), Dice and HD95 (mm):\n\n```\n"
        + format_summary(result)
        + "\n```\n"
    )


def _slice_position_figures(plan, checkpoint: str) -> str:
    positions, paths, subjects = label_positions(acdc_items(plan.acdc, plan.held_out()))
    model, _ = load_position(checkpoint, plan.device or "cpu")
    figures = evaluate_position(model, labelled_stacks(positions, paths.get, subjects.get), plan.device or "cpu")
    return f"Slices of the {2 * len(plan.held_out())} held-out frames, positions from their expert labels: `{json.dumps(figures)}`\n"


def _qc_figures(plan, checkpoint: str) -> str:
    segmentation = SegmentationPredictor(os.path.join(plan.out, "segmentation.pt"), device=plan.device)
    checker = QualityChecker(checkpoint, device=plan.device, segmentation=segmentation)
    result = evaluate_qc_acdc(checker, segmentation, plan.acdc, plan.held_out(), corruptions=1 if plan.quick else 2)
    return (
        f"Predicted against true Dice on the {2 * len(plan.held_out())} held-out frames: the shipped segmentation model's own labels "
        "('model') and two corruptions of each expert label ('varied'); `bench/qc_acdc.py` adds weak-model "
        "labels and the mid-slice experiment:\n\n```\n" + format_qc_summary(result) + "\n```\n"
    )


#: Held-out evaluation of each model for its card.
EVALUATIONS: Dict[str, Callable] = {
    "segmentation": _segmentation_figures,
    "slice_position": _slice_position_figures,
    "qc": _qc_figures,
}


def _data_line(plan) -> str:
    if not plan.hold_out:
        return "all 100 patients"
    quick = " (a quick smoke run: every 8th training patient; not a model to ship)" if plan.quick else ""
    held = ", ".join(f"{n:03d}" for n in plan.held_out())
    return f"{len(plan.patients())} patients{quick}; held out: {held}"


def _command(plan, model: str) -> str:
    caps = [f"{key}={plan.minutes[key]:g}" for key in (model, f"{model}_snapshot") if plan.minutes.get(key)]
    minutes = f" --minutes {','.join(caps)}" if caps else ""
    flags = (" --all-patients" if not plan.hold_out else "") + (" --quick" if plan.quick else "")
    return (
        f".venv/bin/cmrassist train-release --acdc ../shared/acdc/training --out models --models {model} "
        f"--epochs {model}={plan.epochs.get(model)}{minutes} --seed {plan.seed}{flags}"
    )


def _engine_line(plan, model: str, checkpoint: str) -> str:
    """The segmentation model's CPU engine exported beside it with its checksum; the card line naming it."""
    if model != "segmentation":
        return ""
    engine = export_engine(load_segmentation(checkpoint), checkpoint)
    digest = update_checksum(plan.out, os.path.basename(engine))
    return (
        f"\n- **CPU engine**: `{os.path.basename(engine)}`, the ONNX export of these weights compiled by OpenVINO "
        f"(`server/cmrassist_server/segmentation/engine.py`), SHA-256 `{digest}` (also in `{CHECKSUMS}`)."
    )


def write_card(plan, model: str, result: TrainResult, *, minutes: float, machine: Dict) -> str:
    """Evaluate ``model`` on the held-out patients (when held out) and write its card and checksum."""
    checkpoint = os.path.join(plan.out, f"{model}.pt")
    if not result.published or not os.path.isfile(checkpoint):
        raise RuntimeError(f"{model}: the run published no model")
    digest = update_checksum(plan.out, f"{model}.pt")
    engine = _engine_line(plan, model, checkpoint)
    held_out = (
        EVALUATIONS[model](plan, checkpoint) if plan.hold_out else "Trained on all 100 patients: no held-out figures."
    )
    record = read_record(checkpoint) or {}
    epochs = f"{plan.epochs.get(model)} epochs" + (
        f" capped at {plan.minutes[model]:g} min" if plan.minutes.get(model) else ""
    )
    text = f"""# CMRAssist shipped model: `{model}`

{PURPOSE[model]}

- **File**: `{model}.pt` ({os.path.getsize(checkpoint) / 1e6:.1f} MB), SHA-256 `{digest}` (also in `{CHECKSUMS}`;
  the server refuses a file that does not match). Loaded with `torch.load(weights_only=True)`.{engine}
- **Data**: ACDC training set, {_data_line(plan)}, ED and ES frames with expert labels.
- **Recipe**: `cmrassist train-release` (`server/cmrassist_server/release/recipe.py`), through the server's one
  training loop; seed {plan.seed}; {epochs}.
- **Command**: `{_command(plan, model)}`
- **Training**: {result.epochs} epochs in {minutes:.0f} min on {machine["platform"]} ({machine["cpus"]} CPUs,
  {machine["torch_threads"]} torch threads, device {machine["device"]}), {time.strftime("%Y-%m-%d", time.gmtime())}.
- **Validation** (subjects held out of training inside the training patients, used to pick the epoch):
  `{json.dumps(record.get("val"))}` at epoch {record.get("epochs")}.

## Held-out figures

{held_out}
## Licence and citation

{LICENCE}
"""
    path = os.path.join(plan.out, f"{model}.md")
    with open(path, "w") as f:
        f.write(text)
    return path
