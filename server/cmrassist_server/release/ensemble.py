"""The shipped fold ensemble: ``cmrassist ship-ensemble`` takes the 5 fold models of a finished cross-validation
run (``release/folds.py``: each trained on 80 ACDC patients, together on all 100) into ``models/`` beside the
served ``segmentation.pt`` they ship with: ``ensemble/fold<k>.pt``, the manifest ``ensemble.json`` (each member's
SHA-256 and the served model's), its card ``ensemble.md`` (the cross-validation figures) and their lines in
``SHA256SUMS``. Servers install it (``release/shipped.py``);
batch work uses it while the served model is that one (``segmentation/batch.py``).
"""

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from cmrassist_server.core.checkpoints import atomic_write, atomic_write_json, file_sha256, load
from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.release.calibration import (
    calibration_odds,
    calibration_section,
    read_calibration,
    write_shipped,
)
from cmrassist_server.release.cards import LICENCE, update_checksum
from cmrassist_server.release.cv_report import cv_table, scored_folds
from cmrassist_server.release.folds import read_json
from cmrassist_server.release.shipped import verified
from cmrassist_server.segmentation.batch import MANIFEST, MANIFEST_FORMAT, member_file
from cmrassist_server.segmentation.ensemble import EnsemblePredictor

#: The ensemble is the 5 fold models of a 5-fold run: each patient was held out of exactly one of them.
FOLDS = 5
#: The ensemble's model card, beside its manifest.
CARD = "ensemble.md"
#: Every shipped model file stays under this size (the repository keeps them in git).
MAX_BYTES = 25 * 1024 * 1024


def fold_models(state: str, variant: str) -> List[str]:
    """The fold models of a finished 5-fold run of ``variant`` in ``state``, fold 0 first.

    Args:
        state: the run's state folder (``--state`` of ``cmrassist train-release --folds``).
        variant: the recipe variant it ran (``--variant``).

    Raises:
        CMRAssistError: no such run, a run of another fold count or a quick smoke run, an unfinished fold (no
            scored model), a model that is not a segmentation checkpoint, or one over 25 MB.
    """
    root = os.path.join(state, variant)
    plan_path = os.path.join(root, "plan.json")
    if not os.path.isfile(plan_path):
        raise CMRAssistError(
            f"{root} holds no cross-validation run of variant {variant!r} (no plan.json): run "
            f"cmrassist train-release --folds {FOLDS} --variant {variant} --state {state} first"
        )
    plan = read_json(plan_path)
    if plan.get("folds") != FOLDS or plan.get("quick"):
        kind = "a quick smoke run" if plan.get("quick") else f"a {plan.get('folds')}-fold run"
        raise CMRAssistError(f"{root} is {kind}: the ensemble is the {FOLDS} models of a full {FOLDS}-fold run")
    paths = [os.path.join(root, f"fold{k}", "segmentation.pt") for k in range(FOLDS)]
    unfinished = [
        k
        for k, path in enumerate(paths)
        if not os.path.isfile(path) or not os.path.isfile(os.path.join(os.path.dirname(path), "scores.json"))
    ]
    if unfinished:
        raise CMRAssistError(
            f"fold(s) {', '.join(map(str, unfinished))} of {root} are not finished (no scored "
            "model): continue the run with --resume first"
        )
    for path in paths:
        load(path, kind="segmentation")  # a damaged or foreign file is refused here, never shipped
        if os.path.getsize(path) >= MAX_BYTES:
            raise CMRAssistError(f"{path} is {os.path.getsize(path) / 1e6:.1f} MB: shipped models stay under 25 MB")
    return paths


def ship_ensemble(state: str, variant: str, models: str) -> Dict[str, Any]:
    """Copy the fold models of a finished run into ``models`` as the ensemble shipped with its served
    ``segmentation.pt``; returns the manifest written (``ensemble.json``).

    Args:
        state: the cross-validation run's state folder.
        variant: the recipe variant it ran.
        models: the shipped models' folder (``models/``), holding the served ``segmentation.pt`` and its checksum.

    Raises:
        CMRAssistError: see :func:`fold_models`; a served model missing or not matching ``SHA256SUMS``; fold
            models that take other inputs than one another.
    """
    served = verified(models, "segmentation")  # the ensemble names the served model as shipped, checked
    sources = fold_models(state, variant)
    EnsemblePredictor(
        sources, device="cpu", flips=False, engine="torch"
    )  # members that would see other inputs: refused now
    odds, members = calibration_odds(state, variant), []
    for k, source in enumerate(sources):
        file = member_file(k)
        atomic_write(os.path.join(models, file), lambda tmp, source=source: write_shipped(source, tmp, odds))
        scores = read_json(os.path.join(os.path.dirname(source), "scores.json"))
        members.append(
            {
                "fold": k,
                "file": file,
                "sha256": file_sha256(os.path.join(models, file)),
                "held_out_patients": scores.get("patients", []),
            }
        )
    manifest = {
        "format": MANIFEST_FORMAT,
        "variant": variant,
        "served_sha256": file_sha256(served),
        "flips": True,
        "myocardium_odds": odds,
        "members": members,
        "made": time.strftime("%Y-%m-%d", time.gmtime()),
        "command": f"cmrassist ship-ensemble --state {state} --variant {variant} --models {models}",
    }
    atomic_write_json(os.path.join(models, MANIFEST), manifest)
    plan = read_json(os.path.join(state, variant, "plan.json"))
    card = ensemble_card(manifest, scored_folds(state, variant), plan, read_calibration(state, variant))
    atomic_write(os.path.join(models, CARD), lambda tmp: Path(tmp).write_text(card))
    for file in [m["file"] for m in members] + [MANIFEST]:
        update_checksum(models, file)
    return manifest


def ensemble_card(
    manifest: Dict[str, Any], folds: List[Dict], plan: Dict[str, Any], calibration: Optional[Dict] = None
) -> str:
    """The ensemble's model card: what it is for, how it was made, its members and the cross-validation table.

    Args:
        manifest: the manifest :func:`ship_ensemble` wrote.
        folds: every fold's ``scores.json`` (``release/cv_report.scored_folds``).
        plan: the run's ``plan.json`` (folds, epochs, seed).
        calibration: the run's ``calibration.json`` (``release/calibration.py``), if it has one.
    """
    members = "\n".join(
        f"| {m['fold']} | `{m['file']}` | `{m['sha256']}` | {len(m['held_out_patients'])} |"
        for m in manifest["members"]
    )
    patients = sum(len(f["patients"]) for f in folds)
    train = " ".join(
        ["cmrassist train-release --acdc ../shared/acdc/training", f"--folds {plan['folds']}"]
        + [f"--variant {manifest['variant']} --epochs {plan['epochs']} --seed {plan['seed']} --state DIR --resume"]
    )
    return f"""# CMRAssist shipped model: the segmentation fold ensemble (`{MANIFEST}`)

Batch work (`cmrassist analyse`, the study report, QC scoring) segments with the mean of these {len(folds)} models'
class probabilities, over in-plane flips too, while the served `segmentation.pt` is the one it shipped with
(SHA-256 `{manifest["served_sha256"]}`). Each member was trained on the ACDC patients of the other folds; together
they saw all 100.

- **Recipe**: variant `{manifest["variant"]}` of `cmrassist train-release --folds` (`server/cmrassist_server/release/folds.py`), {plan["folds"]} folds
  stratified by disease group, {plan["epochs"]} epochs per fold, seed {plan["seed"]}.
- **Commands**: `{train}`, then `{manifest["command"]}`.
- **Made**: {manifest["made"]}. Loaded with `torch.load(weights_only=True)`; each file checked against `SHA256SUMS`.

| fold | file | SHA-256 | held-out patients |
|---|---|---|---|
{members}

## Cross-validation figures

Each fold's held-out patients ({patients} in all) scored by the fold model that never saw them, per volume (ED and
ES frames alike): Dice and HD95 (mm) by class and phase, clinical MAE and signed bias (prediction minus expert).

```
{chr(10).join(cv_table(folds))}
```
{calibration_section(calibration)}
## Licence

{LICENCE}
"""
