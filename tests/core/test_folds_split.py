"""Cross-validation folds: patient-level (no patient in two folds), stratified (every group in every fold)."""

import random

import pytest

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.splits import stratified_folds

ACDC_GROUPS = {f"patient{n:03d}": ("DCM", "HCM", "MINF", "NOR", "RV")[(n - 1) // 20] for n in range(1, 101)}


def test_acdc_folds_hold_every_patient_once_and_four_of_each_group():
    folds = stratified_folds(ACDC_GROUPS, 5, seed=0)
    every = [p for fold in folds for p in fold]
    assert sorted(every) == sorted(ACDC_GROUPS) and len(every) == len(set(every))
    for fold in folds:
        counts = {g: sum(ACDC_GROUPS[p] == g for p in fold) for g in set(ACDC_GROUPS.values())}
        assert counts == dict.fromkeys(counts, 4)
    assert stratified_folds(ACDC_GROUPS, 5, seed=0) == folds  # the seed decides the split
    assert stratified_folds(ACDC_GROUPS, 5, seed=1) != folds


def test_uneven_groups_still_give_disjoint_folds_of_near_equal_size():
    rng = random.Random(7)
    for _ in range(50):
        groups = {f"s{i}": rng.choice("ABC") for i in range(rng.randint(5, 40))}
        k = rng.randint(2, 5)
        folds = stratified_folds(groups, k, seed=rng.randint(0, 99))
        sizes = [len(f) for f in folds]
        assert sorted(p for f in folds for p in f) == sorted(groups) and max(sizes) - min(sizes) <= 1
        for g in set(groups.values()):
            members = [p for p in groups if groups[p] == g]
            if len(members) >= k:
                assert all(any(groups[p] == g for p in fold) for fold in folds)


def test_more_folds_than_patients_is_refused():
    with pytest.raises(CMRAssistError, match="cannot make 3 folds of 2 subjects"):
        stratified_folds({"a": "X", "b": "X"}, 3, seed=0)
