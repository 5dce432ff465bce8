"""SQLite files the server writes (accounts, audit log, ranking): one connection per thread, WAL, and
``synchronous=FULL`` so that a committed write survives a crash and a power cut."""

import sqlite3
import threading


class SQLiteFile:
    """Connections to one SQLite file, one per thread (a connection may not cross threads).

    Args:
        path: the database file (created when missing).
    """

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db
