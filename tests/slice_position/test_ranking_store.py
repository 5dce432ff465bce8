"""The slice-position ranking store (SQLite + openskill Plackett-Luce), without a server."""

import threading

import numpy as np
import pytest

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.slice_position.ranking_store import RankingStore


def truth_of(store):
    """True position of each item: slice / (slices - 1) of its frame (0 most basal, 1 most apical)."""
    sizes = {}
    for it in store.items():
        sizes[(it.image_id, it.frame)] = max(sizes.get((it.image_id, it.frame), 0), it.slice + 1)
    return {it.id: it.slice / (sizes[(it.image_id, it.frame)] - 1) for it in store.items()}


def make_store(tmp_path, frames=4, slices=10, **kwargs):
    store = RankingStore(str(tmp_path / "ranking.sqlite"), **kwargs)
    for f in range(frames):
        assert store.add_items(f"patient{f:03d}_ed", 1, slices) == slices
    return store


def answer(store, annotator, truth, *, noisy=None, rng=None):
    batch = store.next_batch(annotator, "expert", seed=int(rng.integers(1 << 30)) if rng is not None else None)
    key = {
        it.id: truth[it.id] + (rng.normal(0, 0.5) if noisy is not None and it.id in noisy else 0.0)
        for it in batch.items
    }
    order = sorted(key, key=key.get)
    return batch, store.submit(batch.id, annotator, order, seconds=20.0)


def kendall_tau(a, b):
    n, s = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    return s / (n * (n - 1) / 2)


def test_consistent_rankings_order_the_items_from_base_to_apex(tmp_path):
    store = make_store(tmp_path)
    truth, rng = truth_of(store), np.random.default_rng(0)
    for _ in range(30):
        answer(store, "Dr A", truth, rng=rng)
    items = store.items()
    # Slices at the same level of different frames are ties in the truth: the best possible tau here is 0.92.
    tau = kendall_tau([-it.mu for it in items], [truth[it.id] for it in items])
    assert tau > 0.65
    basal = [it.rating for it in items if truth[it.id] == 0.0]
    apical = [it.rating for it in items if truth[it.id] == 1.0]
    assert min(basal) > 1500 > max(apical) and all(0 <= it.rating <= 3000 for it in items)


def test_an_inconsistently_ranked_item_becomes_volatile(tmp_path):
    store = make_store(tmp_path)
    truth, rng = truth_of(store), np.random.default_rng(1)
    noisy = {it.id for it in store.items() if it.slice in (4, 5)}  # annotators disagree about these
    for _ in range(60):
        answer(store, "Dr A", truth, noisy=noisy, rng=rng)
    vol = {it.id: it.volatility for it in store.items()}
    assert np.mean([vol[i] for i in noisy]) > 2 * np.mean([v for i, v in vol.items() if i not in noisy])


def test_selection_unseen_first_then_volatile_no_repeats_mixed_frames(tmp_path):
    store = make_store(tmp_path, frames=4, slices=8)
    truth, rng = truth_of(store), np.random.default_rng(2)
    seen = set()
    for _ in range(4):  # 32 items: four batches of unseen items cover everything once
        batch, _ = answer(store, "Dr A", truth, rng=rng)
        ids = [it.id for it in batch.items]
        assert len(ids) == len(set(ids)) == 8 and not seen & set(ids)
        assert len({(it.image_id, it.frame) for it in batch.items}) >= 2
        seen |= set(ids)
    assert all(it.views == 1 for it in store.items())
    while min(it.views for it in store.items()) < 3:
        answer(store, "Dr A", truth, rng=rng)
    # every item has 3 views now: the most volatile come first
    vol = sorted((it.volatility for it in store.items()), reverse=True)
    batch = store.next_batch("Dr A", "expert", seed=3)
    assert min(it.volatility for it in batch.items) >= vol[15]  # drawn from the volatile top of the pool


def test_duplicate_and_bad_submissions_change_nothing(tmp_path):
    store = make_store(tmp_path, frames=2, slices=8)
    batch = store.next_batch("Dr A", "expert")
    other = store.next_batch("Dr B", "non-expert")
    ids = [it.id for it in batch.items]
    before = [(it.mu, it.views) for it in store.items()]
    bad = [
        (batch.id, "Dr A", ids[:7], 422),
        (batch.id, "Dr A", ids[:7] + ids[:1], 422),
        (batch.id, "Dr A", ids[:7] + [99999], 422),
        (batch.id, "Dr B", ids, 409),
        (other.id, "Dr A", ids, 409),
        ("no-such-batch", "Dr A", ids, 404),
        (batch.id, "Dr A", ["x"] * 8, 422),
    ]
    for batch_id, who, order, status in bad:
        with pytest.raises(CMRAssistError) as err:
            store.submit(batch_id, who, order)
        assert err.value.status == status, (batch_id, who, order)
    assert [(it.mu, it.views) for it in store.items()] == before
    assert store.submit(batch.id, "Dr A", ids)["counted"] is True
    after = [(it.mu, it.views) for it in store.items()]
    assert store.submit(batch.id, "Dr A", ids) == {"batch": batch.id, "counted": False, "duplicate": True}
    assert [(it.mu, it.views) for it in store.items()] == after
    assert store.progress()["annotators"] == {"Dr A": {"batches": 1, "expertise": "expert"}}


def test_concurrent_annotators_get_disjoint_batches_and_every_answer_counts(tmp_path):
    store = make_store(tmp_path, frames=8, slices=10)
    truth = truth_of(store)
    batches, errors = [], []

    def work(name):
        try:
            local = RankingStore(store.path)  # own connection, as a second server worker would have
            mine = [local.next_batch(name, "expert") for _ in range(2)]
            batches.extend(mine)
            for b in mine:
                order = sorted((it.id for it in b.items), key=lambda i: truth[i])
                local.submit(b.id, name, order)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"Dr {k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    all_ids = [it.id for b in batches for it in b.items]
    assert len(all_ids) == len(set(all_ids)) == 64  # 8 batches open at once at most: never an item twice
    assert sum(it.views for it in store.items()) == 64
    assert sum(a["batches"] for a in store.progress()["annotators"].values()) == 8


def test_unanswered_batches_are_released_and_the_store_survives_a_restart(tmp_path):
    store = make_store(tmp_path, frames=1, slices=8, batch_timeout_s=0.0)
    first = store.next_batch("Dr A", "expert")
    second = store.next_batch("Dr B", "expert")  # the first expired at once: its items are free again
    assert {it.id for it in first.items} == {it.id for it in second.items}
    with pytest.raises(CMRAssistError) as err:
        store.submit(first.id, "Dr A", [it.id for it in first.items])
    assert err.value.status == 409 and "released" in str(err.value)
    store = make_store(tmp_path, frames=0)
    reopened = RankingStore(store.path)
    assert reopened.count() == 8 and reopened.progress()["open_batches"] == 1


def test_derived_labels_follow_the_cut_points(tmp_path):
    store = make_store(tmp_path, frames=3, slices=10)
    truth, rng = truth_of(store), np.random.default_rng(4)
    with pytest.raises(CMRAssistError):
        store.derived_labels()
    for _ in range(25):
        answer(store, "Dr A", truth, rng=rng)
    with pytest.raises(CMRAssistError):
        store.set_cut_points(1000, 2000)  # apical above basal
    store.set_cut_points(1700, 1300)
    labels = store.derived_labels()
    assert [p for _, p in labels] == sorted((p for _, p in labels), key=["too_basal", "in_lv", "too_apical"].index)
    for it, position in labels:
        assert position == ("too_basal" if it.rating > 1700 else "too_apical" if it.rating < 1300 else "in_lv")
    assert {p for _, p in labels} == {"too_basal", "in_lv", "too_apical"}


def test_random_selection_baseline_picks_free_distinct_items(tmp_path):
    store = make_store(tmp_path, frames=2, slices=8)
    first = store.next_batch("A", "expert", selection="random", seed=1)
    second = store.next_batch("B", "expert", selection="random", seed=1)
    ids_a, ids_b = {it.id for it in first.items}, {it.id for it in second.items}
    assert len(ids_a) == len(ids_b) == 8 and not ids_a & ids_b  # 16 items, both batches open: all of them used
    with pytest.raises(CMRAssistError) as full:
        store.next_batch("C", "expert", selection="random")
    assert full.value.status == 409
    with pytest.raises(CMRAssistError) as bad:
        store.next_batch("C", "expert", selection="clever")
    assert bad.value.status == 422
