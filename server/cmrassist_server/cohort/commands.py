"""``cmrassist analyse``: a cohort run from the command line (registered in ``cli.COMMAND_MODULES``)."""

import argparse
import sys

from cmrassist_server.cohort.frames import FRAME_MODES


def cmd_analyse(args) -> int:
    from cmrassist_server.cohort.analyse import AnalysisSettings
    from cmrassist_server.cohort.checks import CheckSettings
    from cmrassist_server.cohort.cluster import ClusterSettings
    from cmrassist_server.cohort.models import ModelFiles
    from cmrassist_server.cohort.run import CohortRun

    models = ModelFiles.resolve(args.model_dir, segmentation=args.segmentation_model, qc=args.qc_model)
    settings = AnalysisSettings(
        frames=args.frames,
        batch_slices=args.batch_slices,
        device=args.device,
        amp=not args.no_amp,
        qc_threshold=args.qc_threshold,
        checks=CheckSettings(
            sv_ml=args.sv_tolerance_ml,
            sv_fraction=args.sv_tolerance_fraction,
            mass_g=args.mass_tolerance_g,
            mass_fraction=args.mass_tolerance_fraction,
        ),
    )
    cluster = ClusterSettings(
        address=args.address,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        object_store_mb=args.object_store_mb,
    )
    run = CohortRun(
        args.studies,
        args.out,
        models=models,
        settings=settings,
        cluster=cluster,
        retry_failed=args.retry_failed,
        review_store=not args.no_review_store,
    )
    try:
        record = run.execute(bar=not args.no_bar, stream=sys.stdout)
    except KeyboardInterrupt:
        print(
            f"cmrassist analyse: interrupted; what finished is kept in {args.out}: run the same command again to "
            "do the rest",
            file=sys.stderr,
        )
        return 130
    counts = record["counts"]
    print(
        f"cohort {record['run']}: {counts['rows_done']} subjects analysed, {counts['rows_failed']} failed "
        f"({counts['done']} done and {counts['failed']} failed in this run, {counts['skipped']} already done) "
        f"-> {record['out']}",
        file=sys.stderr,
    )
    return 0


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not a positive number")
        return value

    return parse


def add_commands(subparsers) -> None:
    """Add ``analyse`` to the ``cmrassist`` command line."""
    p = subparsers.add_parser(
        "analyse",
        help="segment, check and measure every cine of a cohort (locally or on a Ray cluster); resumable",
        description="Every frame (or ED/ES) of every study: labels, QC, measures per subject, checks, a review "
        "queue; Parquet and CSV tables. Run it again on the same --out to finish a killed run. Progress: a bar "
        "on stderr, JSON lines on stdout.",
    )
    p.add_argument("--studies", required=True, help="studies folder (MONAI Label layout or a folder of NIfTI files)")
    p.add_argument("--out", required=True, help="output folder (shared storage when workers run on several hosts)")
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join: HOST:PORT, ray://HOST:PORT or auto (default: start Ray on this machine)",
    )
    p.add_argument("--frames", choices=FRAME_MODES, default="all", help="every cine frame, or ED and ES only")
    p.add_argument("--workers", type=_positive(int), default=None, help="model workers (default: as many as fit)")
    p.add_argument("--cpus-per-worker", type=_positive(float), default=1.0)
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (0: CPU workers)")
    p.add_argument("--model-dir", default=None, help="served models' folder (default: models/, else server/model/)")
    p.add_argument("--segmentation-model", default=None, help="a named segmentation checkpoint instead")
    p.add_argument("--qc-model", default=None, help="a named QC checkpoint instead")
    p.add_argument("--batch-slices", type=_positive(int), default=64, help="slices per forward pass")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: CUDA when the worker has one")
    p.add_argument("--no-amp", action="store_true", help="full precision on GPU (default: float16 autocast)")
    p.add_argument("--qc-threshold", type=float, default=0.7, help="predicted slice Dice under which QC flags")
    p.add_argument("--sv-tolerance-ml", type=float, default=20.0, help="LV/RV stroke volumes agree within this ...")
    p.add_argument("--sv-tolerance-fraction", type=float, default=0.25, help="... or this share of their mean")
    p.add_argument("--mass-tolerance-g", type=float, default=20.0, help="ED/ES LV mass agree within this ...")
    p.add_argument("--mass-tolerance-fraction", type=float, default=0.25, help="... or this share of their mean")
    p.add_argument("--retry-failed", action="store_true", help="analyse failed subjects again")
    p.add_argument("--no-review-store", action="store_true", help="leave the studies folder's QC store alone")
    p.add_argument("--object-store-mb", type=_positive(int), default=200, help="object store of a local Ray")
    p.add_argument("--no-bar", action="store_true", help="no terminal progress bar (JSON lines only)")
    p.set_defaults(func=cmd_analyse)
