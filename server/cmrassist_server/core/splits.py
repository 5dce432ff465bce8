"""Subject-wise training/validation splits (a subject's frames never sit on both sides)."""

import random
from typing import Dict, List, Sequence, Set, Tuple

from cmrassist_server.core.errors import CMRAssistError


def split_subjects(
    subjects: Sequence[str], groups: Dict[str, str], val_split: float, seed: int
) -> Tuple[Set[str], Set[str]]:
    """Split subjects so that every group (e.g. ACDC disease group) appears in both parts where it can.

    Args:
        subjects: subject of each sample (repeats allowed).
        groups: group of each subject (missing: one common group).
        val_split: fraction of each group's subjects for validation (at least one where a group has two).
        seed: shuffling seed.

    Raises:
        CMRAssistError (409): fewer than two subjects.
    """
    rng = random.Random(seed)
    by_group: Dict[str, List[str]] = {}
    for s in sorted(set(subjects)):
        by_group.setdefault(groups.get(s, ""), []).append(s)
    val: Set[str] = set()
    for members in by_group.values():
        rng.shuffle(members)
        n = int(round(len(members) * val_split))
        if len(members) >= 2:
            n = min(max(n, 1), len(members) - 1)
        val.update(members[:n])
    if not val:
        val = {sorted(set(subjects))[-1]}
    train = set(subjects) - val
    if not train:
        raise CMRAssistError("need labelled images of at least two subjects to train and validate", 409)
    return train, val


def stratified_folds(groups: Dict[str, str], folds: int, seed: int) -> List[List[str]]:
    """Patient-level folds for cross-validation, each group dealt round-robin over the folds after a shuffle.

    Every subject sits in exactly one fold, and a group with at least ``folds`` subjects is in every fold (ACDC:
    20 patients per disease group, 4 per group in each of 5 folds).

    Args:
        groups: group of each subject (e.g. ACDC ``Group`` of each patient).
        folds: number of folds (at least 2, at most the number of subjects).
        seed: shuffling seed.

    Raises:
        CMRAssistError (400): fewer subjects than folds, or fewer than 2 folds.
    """
    if folds < 2 or folds > len(groups):
        raise CMRAssistError(f"cannot make {folds} folds of {len(groups)} subjects (2 to {len(groups)} folds)")
    rng = random.Random(seed)
    by_group: Dict[str, List[str]] = {}
    for subject in sorted(groups):
        by_group.setdefault(groups[subject], []).append(subject)
    out: List[List[str]] = [[] for _ in range(folds)]
    dealt = 0
    for group in sorted(by_group):
        members = by_group[group]
        rng.shuffle(members)
        for member in members:
            out[dealt % folds].append(member)  # continues where the last group stopped: fold sizes differ by <= 1
            dealt += 1
    return [sorted(fold) for fold in out]
