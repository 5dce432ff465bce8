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
