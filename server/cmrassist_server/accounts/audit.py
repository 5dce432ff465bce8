"""The audit log: every change (label stored, version accepted, consensus, cut points, training started, model
version served, account added or revoked) with who, when, what and from which address.

An SQLite table that only grows: triggers refuse updates and deletes, WAL with synchronous=FULL keeps every
acknowledged entry across a crash. Admins read it with ``GET /audit``.
"""

import json
import sqlite3
import time
from typing import Any, Dict, List, Optional

from cmrassist_server.core.sqlite import SQLiteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL, role TEXT, action TEXT NOT NULL,
    target TEXT, details TEXT, address TEXT);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditLog:
    """Append-only audit entries.

    Args:
        path: the SQLite file (created when missing).
    """

    def __init__(self, path: str):
        self.path = path
        self._file = SQLiteFile(path)
        self._db().executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        return self._file.connection()

    def append(
        self,
        actor: str,
        action: str,
        *,
        target: Optional[str] = None,
        role: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
        address: Optional[str] = None,
    ) -> None:
        self._db().execute(
            "INSERT INTO audit (at, actor, role, action, target, details, address) VALUES (?,?,?,?,?,?,?)",
            (time.time(), actor, role, action, target, json.dumps(details or {}, default=str), address),
        )

    def read(self, *, since_id: int = 0, limit: int = 1000, action: Optional[str] = None) -> List[Dict[str, Any]]:
        query, args = "SELECT * FROM audit WHERE id > ?", [since_id]
        if action:
            query, args = query + " AND action = ?", args + [action]
        rows = self._db().execute(query + " ORDER BY id LIMIT ?", (*args, min(max(limit, 1), 10000)))
        return [{**dict(r), "details": json.loads(r["details"] or "{}")} for r in rows]
