"""The cohort table: one row per subject (analysed or failed), written as Parquet and CSV with the same columns.

Rows hold results only (no timings, no run ids), so a resumed run and an uninterrupted one write the same table.
"""

import csv
from typing import Any, Dict, List, Tuple

from cmrassist_server.cohort.function import CORRECTED_KEYS, RAW_KEYS
from cmrassist_server.core.checkpoints import atomic_write

CHECK_NAMES = ("volume_curve", "ed_es_timing", "stroke_volumes", "mass_ed_es")
RATE_KEYS = tuple(
    f"{side}_{rate}"
    for side in ("lv", "rv")
    for rate in ("per_ml_per_frame", "pfr_ml_per_frame", "per_ml_s", "pfr_ml_s")
)

#: Column names and Arrow types, in table order.
COLUMNS: Tuple[Tuple[str, str], ...] = (
    ("subject", "string"),
    ("status", "string"),
    ("reason", "string"),
    ("images", "string"),
    ("analysed_image", "string"),
    ("frames_total", "int64"),
    ("frames_analysed", "int64"),
    ("ed_frame", "int64"),
    ("es_frame", "int64"),
    ("ed_es_source", "string"),
    *((k, "float64") for k in RAW_KEYS),
    *((f"{k}_corrected", "float64") for k in CORRECTED_KEYS),
    *((k, "float64") for k in RATE_KEYS),
    ("qc_learned", "bool"),
    ("ed_review_priority", "float64"),
    ("es_review_priority", "float64"),
    ("ed_worst_dice_3d", "float64"),
    ("es_worst_dice_3d", "float64"),
    ("ed_flagged_slices", "int64"),
    ("es_flagged_slices", "int64"),
    *((f"check_{c}", "bool") for c in CHECK_NAMES),
    ("checks_failed", "string"),
    ("review_priority", "float64"),
    ("review_image", "string"),
    ("review_frame", "int64"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)


def _phase(report, key: str):
    if not report:
        return None
    summary = report["summary"]
    return {
        "priority": summary["review_priority"],
        "worst": summary["worst_dice_3d"],
        "flagged": len(summary["flagged_slices"]),
    }[key]


def subject_row(record: Dict[str, Any]) -> Dict[str, Any]:
    """The table row of an analysed subject's record."""
    frames, qc, curve = record["frames"], record["qc"], record["curve"]
    checks = {c["check"]: c["passed"] for c in record["checks"]}
    row: Dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
    row.update(
        subject=record["subject"],
        status="done",
        reason="",
        images=";".join(record["images"]),
        analysed_image=";".join(dict.fromkeys(f["image"] for f in frames)),
        frames_total=record["frames_total"],
        frames_analysed=len(frames),
        ed_frame=record["ed_frame"],
        es_frame=record["es_frame"],
        ed_es_source=record["ed_es_source"],
        qc_learned=bool(frames[0]["qc"]["learned"]),
        checks_failed=";".join(record["review"]["failed_checks"]),
        review_priority=record["review"]["priority"],
        review_image=record["review"]["image"],
        review_frame=record["review"]["frame"],
    )
    row.update({k: v for k, v in record["function"].items() if k in row})
    if curve:
        row.update({f"{side}_{k}": v for side in ("lv", "rv") for k, v in curve[side].items()})
    for phase in ("ed", "es"):
        row.update(
            {
                f"{phase}_review_priority": _phase(qc[phase], "priority"),
                f"{phase}_worst_dice_3d": _phase(qc[phase], "worst"),
                f"{phase}_flagged_slices": _phase(qc[phase], "flagged"),
            }
        )
    row.update({f"check_{name}": checks.get(name) for name in CHECK_NAMES})
    return row


def failed_row(record: Dict[str, Any]) -> Dict[str, Any]:
    """The table row of a subject that could not be analysed: its id, images and the reason."""
    row: Dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
    row.update(subject=record["subject"], status="failed", reason=record["reason"], images=";".join(record["images"]))
    return row


def row_of(record: Dict[str, Any]) -> Dict[str, Any]:
    return record["row"] if record.get("status") == "done" else failed_row(record)


def write_csv(rows: List[Dict[str, Any]], path: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMN_NAMES)
            writer.writeheader()
            writer.writerows({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMN_NAMES} for row in rows)

    atomic_write(path, write)


def write_parquet(rows: List[Dict[str, Any]], path: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    schema = pa.schema([(name, types[kind]) for name, kind in COLUMNS])
    table = pa.Table.from_pylist([{k: row.get(k) for k in COLUMN_NAMES} for row in rows], schema=schema)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_tables(rows: List[Dict[str, Any]], csv_path: str, parquet_path: str) -> None:
    """The same rows as CSV and Parquet (each written atomically)."""
    write_parquet(rows, parquet_path)
    write_csv(rows, csv_path)
