"""``cmrassist``: command-line parts of CMRAssist (server, phantoms, ACDC import, evaluation, demo preparation)."""

import argparse
import importlib
import os
import sys
from typing import List, Optional

from tqdm import tqdm


def _bar(total: int, desc: str):
    bar = tqdm(total=total, desc=desc, unit="subject", file=sys.stderr)

    def update(done: int, _total: int) -> None:
        bar.n = done
        bar.refresh()
        if done >= _total:
            bar.close()

    return update


def cmd_phantoms(args) -> int:
    from cmrassist_server.io.studies import phantom_studies

    n = phantom_studies(
        args.out,
        args.n,
        args.seed,
        labelled_fraction=args.labelled_fraction,
        with_cine=args.cine,
        progress=_bar(args.n, "phantoms"),
    )
    print(f"wrote {n} phantom images ({args.n} subjects) to {args.out}")
    return 0


def cmd_import_acdc(args) -> int:
    from cmrassist_server.io.acdc import import_acdc
    from CMRAssistCore.labels import parse_label_map

    mapping = parse_label_map(args.label_map) if args.label_map else None
    counts = import_acdc(
        args.src,
        args.dst,
        patients=args.patients,
        label_map=mapping,
        with_cine=not args.no_cine,
        progress=_bar(100, "import"),
    )
    print(
        f"imported {counts['patients']} patients: {counts['images']} images, {counts['labels']} expert labels -> {args.dst}"
    )
    return 0


def cmd_evaluate(args) -> int:
    from cmrassist_server.segmentation.evaluate import evaluate_folders, format_report

    result = evaluate_folders(args.pred, args.ref, args.csv)
    print(format_report(result))
    return 0


def _shipped_dir() -> str:
    """The shipped models' folder when it holds a segmentation model that passes its checksum, else ``""``."""
    from cmrassist_server.core.errors import CMRAssistError
    from cmrassist_server.release.shipped import shipped_folder, verified

    folder = os.environ.get("CMRASSIST_SHIPPED_DIR") or shipped_folder()
    try:
        return folder if folder != "none" and verified(folder, "segmentation") else ""
    except (CMRAssistError, OSError):
        return ""


def cmd_prepare_demo(args) -> int:
    """Phantom studies when the folder is empty, and a demo model when none exists: the shipped one fine-tuned on
    the labelled phantoms (a bootstrap model trained on them when nothing is shipped), with progress bars."""
    from monailabel.datastore.local import LocalDatastore

    from cmrassist_server.io.studies import phantom_studies, training_items
    from cmrassist_server.release.shipped import install_shipped
    from cmrassist_server.segmentation.training import SegmentationTrainOptions, train_segmentation

    checkpoint = os.path.join(args.model_dir, "segmentation.pt")
    existing = (
        [f for f in os.listdir(args.studies) if f.endswith((".nii.gz", ".nii"))] if os.path.isdir(args.studies) else []
    )
    if not existing:
        print(
            f"[demo] writing {args.phantoms} phantom subjects to {args.studies} (labels on {args.labelled_fraction:.0%})"
        )
        phantom_studies(
            args.studies,
            args.phantoms,
            args.seed,
            labelled_fraction=args.labelled_fraction,
            with_cine=True,
            progress=_bar(args.phantoms, "phantoms"),
        )
    if os.path.isfile(checkpoint):
        print(f"[demo] model present: {checkpoint}")
        return 0
    items = training_items(LocalDatastore(args.studies, extensions=("*.nii.gz", "*.nii")))
    if len(items) < 2:
        print(f"[demo] only {len(items)} labelled images in {args.studies}: no demo model; train from the UI later")
        return 0
    shipped = _shipped_dir()
    if shipped:
        # The shipped model knows real hearts; a short fine-tune teaches it the phantoms' simpler contrast.
        print(f"[demo] shipped models installed: {install_shipped(args.model_dir, shipped)}")
        print(
            f"[demo] fine-tuning the shipped segmentation model on {len(items)} labelled phantom frames for "
            f"{args.finetune_minutes:g} min"
        )
        options = SegmentationTrainOptions(max_minutes=args.finetune_minutes, max_epochs=50, from_scratch=False)
    else:
        print(f"[demo] no model: bootstrap training on {len(items)} labelled phantom frames for {args.minutes:g} min")
        options = SegmentationTrainOptions(max_minutes=args.minutes, max_epochs=200)
    bar = tqdm(total=100, desc="demo model training", unit="%", file=sys.stderr)

    def log(event: str, **fields) -> None:
        if event == "epoch":
            bar.n = min(100, int(fields["percent"]))
            bar.set_postfix(val_dice=round(fields["val"]["mean"], 3))
            bar.refresh()

    result = train_segmentation(items, checkpoint, options, log=log)
    bar.n = 100
    bar.close()
    print(f"[demo] demo model published: {result.published}, best validation Dice {result.best_val}")
    return 0


def _check_sign_in(args, conf: dict) -> None:
    """Beyond loopback, a server needs sign-in: local accounts in the studies folder, or OIDC."""
    from cmrassist_server.accounts.commands import state_dir
    from cmrassist_server.accounts.store import AccountStore
    from cmrassist_server.api.serving import is_loopback

    if is_loopback(args.host) or conf.get("oidc_issuer"):
        return
    path = os.path.join(state_dir(args.studies, args.model_dir), "users.sqlite")
    if not os.path.isfile(path) or AccountStore(path).active_count() == 0:
        raise ValueError(
            f"refusing to listen on {args.host} without sign-in: add accounts first (cmrassist users add "
            f"NAME --role admin --studies {args.studies}) or configure OIDC (--conf oidc_issuer=... "
            "oidc_audience=... oidc_jwks_url=...), or listen on 127.0.0.1"
        )


def cmd_serve(args) -> int:
    """The MONAI Label server with the CMRAssist app, from any shell (no venv activation needed)."""
    from cmrassist_server.launcher import server_command, server_env

    conf = []
    for pair in args.conf:
        if "=" not in pair:
            raise ValueError(f"--conf takes key=value, not {pair!r}")
        conf += ["--conf", *pair.split("=", 1)]
    _check_sign_in(args, dict(zip(conf[1::3], conf[2::3])))
    cmd = server_command(args.studies, args.model_dir, host=args.host, port=args.port, conf=conf)
    print("[serve] " + " ".join(cmd), flush=True)
    os.execve(cmd[0], cmd, server_env())  # the server replaces this process: signals reach it directly
    return 0  # not reached


#: Packages that bring their own commands: each module has ``add_commands(subparsers)``, whose parsers set ``func``.
COMMAND_MODULES: List[str] = [
    "cmrassist_server.accounts.commands",
    "cmrassist_server.cohort.commands",
    "cmrassist_server.reporting.commands",
    "cmrassist_server.release.commands",
]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="cmrassist", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the MONAI Label server with the CMRAssist app")
    p.add_argument("--studies", required=True, help="studies folder (or a DICOMweb URL)")
    p.add_argument("--model-dir", default=os.path.join("server", "model"))
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--conf", nargs="*", default=[], help="app settings as key=value (see core/conf.py)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("phantoms", help="write synthetic short-axis cine phantoms as a MONAI Label studies folder")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=10, help="number of subjects")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labelled-fraction", type=float, default=1.0, help="share of subjects given final labels")
    p.add_argument("--cine", action="store_true", help="also write each subject's 4D cine")
    p.set_defaults(func=cmd_phantoms)

    p = sub.add_parser("import-acdc", help="import the ACDC layout into a MONAI Label studies folder")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--patients", help="patient numbers, e.g. 1-80 or 1-5,90 (default: all)")
    p.add_argument(
        "--label-map", help="source label convention, e.g. LV=1,MYO=2,RV=3 (default: ACDC's RV=1,MYO=2,LV=3)"
    )
    p.add_argument("--no-cine", action="store_true", help="skip 4D cines")
    p.set_defaults(func=cmd_import_acdc)

    p = sub.add_parser("evaluate", help="per-class Dice/HD95 and EF/EDV/mass errors of predicted vs reference labels")
    p.add_argument("--pred", required=True)
    p.add_argument("--ref", required=True)
    p.add_argument("--csv", default="evaluation.csv")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("prepare-demo", help="phantom studies and a demo model (the shipped one fine-tuned)")
    p.add_argument("--studies", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--phantoms", type=int, default=8)
    p.add_argument("--labelled-fraction", type=float, default=0.75)
    p.add_argument("--minutes", type=float, default=3.0, help="bootstrap training budget (no shipped model)")
    p.add_argument("--finetune-minutes", type=float, default=0.25, help="shipped model fine-tune on the phantoms")
    p.add_argument("--seed", type=int, default=1000)
    p.set_defaults(func=cmd_prepare_demo)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(sub)
    return ap


def main(argv: Optional[List[str]] = None) -> int:
    from cmrassist_server.imaging.imageio import CMRAssistError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CMRAssistError, ValueError) as e:
        print(f"cmrassist {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
