"""Slice-position ranking store: items, batches, submissions and ratings in one SQLite file beside the datastore.

Every slice of every stored frame is an item with an openskill Plackett-Luce rating (``mu``, ``sigma``), a view
count and a volatility. Annotators get batches of 8 items and answer with the items ordered from most basal to
most apical; each answer is one Plackett-Luce match. SQLite runs in WAL mode and every change is one
``BEGIN IMMEDIATE`` transaction, so concurrent annotators (threads or processes) never get the same open
batch and no submission is lost.
"""

import json
import os
import random
import sqlite3
import time
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from openskill.models import PlackettLuce

from cmrassist_server.core.errors import CMRAssistError
from cmrassist_server.core.sqlite import SQLiteFile

BATCH_SIZE = 8
#: Open batches one annotator may hold at once (so no one can lock the slices away from the others).
MAX_OPEN_BATCHES = 3
#: Items need this many views before volatility, rather than novelty, drives selection.
MIN_VIEWS = 3
#: An unanswered batch is released after this many seconds.
BATCH_TIMEOUT_S = 15 * 60
# Exponential moving average weight of a new surprise in the volatility.
_VOLATILITY_RATE = 0.5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY, image_id TEXT NOT NULL, frame INTEGER NOT NULL, slice INTEGER NOT NULL,
    mu REAL NOT NULL, sigma REAL NOT NULL, views INTEGER NOT NULL DEFAULT 0, volatility REAL NOT NULL DEFAULT 0,
    shuffle REAL NOT NULL, priority REAL NOT NULL DEFAULT 0, UNIQUE (image_id, frame, slice));
CREATE INDEX IF NOT EXISTS items_novelty ON items (views, shuffle);
CREATE INDEX IF NOT EXISTS items_priority ON items (priority DESC, shuffle);
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY, annotator TEXT NOT NULL, expertise TEXT NOT NULL, items TEXT NOT NULL,
    created REAL NOT NULL, expires REAL NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS batches_status ON batches (status);
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY, batch_id TEXT NOT NULL UNIQUE, annotator TEXT NOT NULL, expertise TEXT NOT NULL,
    ordered_items TEXT NOT NULL, seconds REAL, submitted REAL NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _shuffle_key(image_id: str, frame: int, slice_index: int) -> float:
    """A fixed pseudo-random number per item: mixes studies in the selection order, the same on every run."""
    return zlib.crc32(f"{image_id}/{int(frame)}/{int(slice_index)}".encode()) / 2.0**32


@dataclass(frozen=True)
class Item:
    id: int
    image_id: str
    frame: int
    slice: int
    mu: float
    sigma: float
    views: int
    volatility: float

    @property
    def rating(self) -> float:
        """The rating on a 0-3000 scale (1500 = openskill's default mean; 60 points per mu unit)."""
        return float(min(3000.0, max(0.0, 1500.0 + 60.0 * (self.mu - 25.0))))


@dataclass(frozen=True)
class Batch:
    id: str
    annotator: str
    expertise: str
    items: List[Item]
    expires: float


class RankingStore:
    """The ranking database.

    Args:
        path: SQLite file (created when missing).
        batch_timeout_s: seconds before an unanswered batch is released.
        model: the openskill model (Plackett-Luce with defaults).
    """

    def __init__(
        self,
        path: str,
        *,
        batch_timeout_s: float = BATCH_TIMEOUT_S,
        model: Optional[PlackettLuce] = None,
        max_open_batches: int = MAX_OPEN_BATCHES,
    ):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.batch_timeout_s = batch_timeout_s
        self.max_open_batches = max_open_batches
        self.model = model or PlackettLuce()
        self._file = SQLiteFile(path)
        self._connection().executescript(_SCHEMA)

    # -- plumbing -----------------------------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        return self._file.connection()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _item(row: sqlite3.Row) -> Item:
        return Item(
            id=row["id"],
            image_id=row["image_id"],
            frame=row["frame"],
            slice=row["slice"],
            mu=row["mu"],
            sigma=row["sigma"],
            views=row["views"],
            volatility=row["volatility"],
        )

    # -- items --------------------------------------------------------------------------------------------------
    def add_items(self, image_id: str, frame: int, slices: int) -> int:
        """Register every slice of one frame (again: nothing changes); returns how many were new."""
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO items (image_id, frame, slice, mu, sigma, shuffle) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (image_id, int(frame), s, self.model.mu, self.model.sigma, _shuffle_key(image_id, frame, s))
                    for s in range(int(slices))
                ],
            )
            return db.total_changes - before

    def items(self, ids: Optional[Sequence[int]] = None) -> List[Item]:
        db = self._connection()
        if ids is None:
            rows = db.execute("SELECT * FROM items ORDER BY id").fetchall()
            return [self._item(r) for r in rows]
        rows = {
            r["id"]: r for r in db.execute(f"SELECT * FROM items WHERE id IN ({','.join('?' * len(ids))})", list(ids))
        }
        return [self._item(rows[i]) for i in ids if i in rows]

    def count(self) -> int:
        return int(self._connection().execute("SELECT COUNT(*) FROM items").fetchone()[0])

    # -- batches ------------------------------------------------------------------------------------------------
    def next_batch(
        self,
        annotator: str,
        expertise: str,
        *,
        size: int = BATCH_SIZE,
        min_views: int = MIN_VIEWS,
        seed: Optional[int] = None,
        selection: str = "informative",
    ) -> Batch:
        """A new open batch for ``annotator``: unseen and less-seen items first, then the most volatile.

        Once every item has ``min_views``, priority is volatility x sigma / initial sigma: items annotators disagree
        about come first, but an item already seen many times (small sigma) yields its turn.

        Items in other open batches are never chosen, so concurrent annotators get different batches. Within
        the batch, items come from as many different frames as possible and have ratings close to each other
        (ordering slices that are obviously far apart teaches little).

        ``selection="random"`` picks free items uniformly instead (the baseline that benchmarks compare with).
        """
        if not annotator or not annotator.strip():
            raise CMRAssistError("annotator name is empty", 422)
        if selection not in ("informative", "random"):
            raise CMRAssistError(f"selection must be 'informative' or 'random', not {selection!r}", 422)
        rng = random.Random(seed)
        now = time.time()
        with self._transaction() as db:
            db.execute("UPDATE batches SET status='released' WHERE status='open' AND expires < ?", (now,))
            mine = db.execute("SELECT COUNT(*) FROM batches WHERE status='open' AND annotator=?", (annotator.strip(),))
            if mine.fetchone()[0] >= self.max_open_batches:
                raise CMRAssistError(
                    f"{annotator.strip()} has {self.max_open_batches} open batches: submit them first "
                    "(unanswered batches are released after 15 minutes)",
                    429,
                )
            busy = set()
            for (items_json,) in db.execute("SELECT items FROM batches WHERE status='open'"):
                busy.update(json.loads(items_json))
            if selection == "random":
                chosen = self._random_pick(db, busy, size, rng)
            else:
                chosen = self._informative_pick(db, busy, size, min_views)
                rng.shuffle(chosen)
            return self._open(db, annotator, expertise, chosen, now)

    def _random_pick(self, db: sqlite3.Connection, busy: set, size: int, rng: random.Random) -> List[Item]:
        """``size`` free items drawn uniformly (the benchmarks' baseline)."""
        count = int(db.execute("SELECT MAX(id) FROM items").fetchone()[0] or 0)
        picked: Dict[int, None] = {}
        for _ in range(50 * size):
            if len(picked) == size:
                break
            k = rng.randint(1, max(count, 1))
            if k not in busy:
                picked[k] = None
        chosen = self.items(list(picked))
        if len(chosen) < size:
            raise CMRAssistError(f"only {len(chosen)} slices are free; try again shortly", 409)
        return chosen

    def _informative_pick(self, db: sqlite3.Connection, busy: set, size: int, min_views: int) -> List[Item]:
        """The highest-priority free items, then a batch of them from different frames with close ratings."""
        # Read through the indexes (fast with 100,000 items): fewest views first in a random order fixed per item,
        # then, once every item has min_views, the most volatile.
        want = 2 * size + len(busy)
        rows = db.execute(
            "SELECT * FROM items WHERE views < ? ORDER BY views, shuffle LIMIT ?", (min_views, want)
        ).fetchall()
        if len(rows) < want:
            rows += db.execute(
                "SELECT * FROM items WHERE views >= ? ORDER BY priority DESC, shuffle LIMIT ?", (min_views, want)
            ).fetchall()
        pool = [self._item(r) for r in rows if r["id"] not in busy][: 2 * size]
        if len(pool) < size:
            raise CMRAssistError(
                f"only {len(pool)} slices are free (others are in open batches); try again shortly", 409
            )
        chosen = [pool.pop(0)]
        while len(chosen) < size:
            frames: Dict[Tuple[str, int], int] = {}
            for it in chosen:
                frames[(it.image_id, it.frame)] = frames.get((it.image_id, it.frame), 0) + 1
            centre = sum(it.mu for it in chosen) / len(chosen)

            def cost(k_item, frames=frames, centre=centre):
                k, it = k_item
                return 3.0 * frames.get((it.image_id, it.frame), 0) + abs(it.mu - centre) / (it.sigma + 1.0) + 0.02 * k

            k, _ = min(enumerate(pool), key=cost)
            chosen.append(pool.pop(k))
        return chosen

    def _open(self, db: sqlite3.Connection, annotator: str, expertise: str, chosen: List[Item], now: float) -> Batch:
        batch = Batch(
            id=uuid.uuid4().hex,
            annotator=annotator.strip(),
            expertise=expertise,
            items=chosen,
            expires=now + self.batch_timeout_s,
        )
        db.execute(
            "INSERT INTO batches (id, annotator, expertise, items, created, expires, status) "
            "VALUES (?, ?, ?, ?, ?, ?, 'open')",
            (batch.id, batch.annotator, expertise, json.dumps([it.id for it in chosen]), now, batch.expires),
        )
        return batch

    def submit(
        self, batch_id: str, annotator: str, ordered_ids: Sequence[int], *, seconds: Optional[float] = None
    ) -> Dict:
        """Record an answer (items from most basal to most apical) and update the ratings as one match.

        A batch answered twice counts once: the second identical answer is acknowledged and ignored.

        Raises:
            CMRAssistError: unknown batch (404), someone else's batch or a released one (409), an order that is
                not exactly the batch's items (422).
        """
        with self._transaction() as db:
            row = db.execute("SELECT * FROM batches WHERE id=?", (str(batch_id),)).fetchone()
            if row is None:
                raise CMRAssistError(f"unknown batch {batch_id!r}", 404)
            if row["annotator"] != (annotator or "").strip():
                raise CMRAssistError(f"batch {batch_id} was given to {row['annotator']!r}, not {annotator!r}", 409)
            try:
                order = [int(i) for i in ordered_ids]
            except (TypeError, ValueError):
                raise CMRAssistError("the order must be a list of item ids", 422) from None
            expected = json.loads(row["items"])
            if len(order) != len(expected) or len(set(order)) != len(order) or set(order) != set(expected):
                raise CMRAssistError(
                    f"the order must hold each of the batch's {len(expected)} items exactly once "
                    f"(got {len(order)} ids, {len(set(order))} distinct)",
                    422,
                )
            done = db.execute("SELECT ordered_items FROM submissions WHERE batch_id=?", (row["id"],)).fetchone()
            if done is not None:
                return {"batch": row["id"], "counted": False, "duplicate": True}
            if row["status"] == "released":
                raise CMRAssistError(
                    f"batch {batch_id} was not answered in time and was released; ask for a new one", 409
                )
            items = {
                r["id"]: self._item(r)
                for r in db.execute(f"SELECT * FROM items WHERE id IN ({','.join('?' * len(order))})", order)
            }
            self._rate(db, [items[i] for i in order])
            db.execute("UPDATE batches SET status='answered' WHERE id=?", (row["id"],))
            db.execute(
                "INSERT INTO submissions (batch_id, annotator, expertise, ordered_items, seconds, submitted) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (row["id"], row["annotator"], row["expertise"], json.dumps(order), seconds, time.time()),
            )
        return {"batch": row["id"], "counted": True, "duplicate": False}

    def _rate(self, db: sqlite3.Connection, ordered: List[Item]) -> None:
        """One Plackett-Luce match (first = most basal = winner) and each item's surprise into its volatility."""
        n = len(ordered)
        teams = [[self.model.rating(mu=it.mu, sigma=it.sigma)] for it in ordered]
        rated = self.model.rate(teams, ranks=list(range(n)))
        mus = [it.mu for it in ordered]
        informative = max(mus) - min(mus) > 1e-9  # all equal (all unseen): no expectation to be surprised by
        for pos, (it, team) in enumerate(zip(ordered, rated)):
            volatility = it.volatility
            if informative and it.views > 0:
                higher = sum(1 for m in mus if m > it.mu)
                ties = sum(1 for m in mus if m == it.mu) - 1
                expected = higher + ties / 2  # expected position from the ratings before this answer
                surprise = abs(pos - expected) / (n - 1)
                volatility = (1 - _VOLATILITY_RATE) * volatility + _VOLATILITY_RATE * surprise
            volatility = min(1.0, max(0.0, volatility))
            # Volatile and still uncertain first: an item seen many times has a small sigma and yields its turn.
            priority = volatility * team[0].sigma / self.model.sigma
            db.execute(
                "UPDATE items SET mu=?, sigma=?, views=views+1, volatility=?, priority=? WHERE id=?",
                (team[0].mu, team[0].sigma, volatility, priority, it.id),
            )

    # -- what reviewers see ---------------------------------------------------------------------------------------
    def progress(self, min_views: int = MIN_VIEWS) -> Dict:
        db = self._connection()
        total = self.count()
        enough = int(db.execute("SELECT COUNT(*) FROM items WHERE views >= ?", (min_views,)).fetchone()[0])
        per_annotator = {
            r[0]: {"batches": r[1], "expertise": r[2]}
            for r in db.execute("SELECT annotator, COUNT(*), MAX(expertise) FROM submissions GROUP BY annotator")
        }
        open_batches = int(db.execute("SELECT COUNT(*) FROM batches WHERE status='open'").fetchone()[0])
        return {
            "items": total,
            "items_with_enough_views": enough,
            "min_views": min_views,
            "annotators": per_annotator,
            "open_batches": open_batches,
        }

    def ordered(self) -> List[Item]:
        """Every item from most basal (highest rating) to most apical."""
        return sorted(self.items(), key=lambda it: (-it.mu, it.id))

    def set_cut_points(self, basal_end: float, apical_start: float) -> Dict[str, float]:
        """Ratings (0-3000) that split the ordered list: above ``basal_end`` too basal, below ``apical_start`` too apical."""
        basal_end, apical_start = float(basal_end), float(apical_start)
        if not 0 <= apical_start < basal_end <= 3000:
            raise CMRAssistError("cut points must satisfy 0 <= apical_start < basal_end <= 3000", 422)
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('cut_points', ?)",
                (json.dumps({"basal_end": basal_end, "apical_start": apical_start}),),
            )
        return self.cut_points() or {}

    def cut_points(self) -> Optional[Dict[str, float]]:
        row = self._connection().execute("SELECT value FROM settings WHERE key='cut_points'").fetchone()
        return json.loads(row[0]) if row else None

    def derived_labels(self) -> List[Tuple[Item, str]]:
        """``(item, position)`` with position ``too_basal``, ``in_lv`` or ``too_apical`` from the cut points."""
        cuts = self.cut_points()
        if cuts is None:
            raise CMRAssistError("no cut points set yet: a reviewer sets them on the ordered list first", 409)
        out = []
        for it in self.ordered():
            r = it.rating
            out.append(
                (it, "too_basal" if r > cuts["basal_end"] else "too_apical" if r < cuts["apical_start"] else "in_lv")
            )
        return out
