"""Moving from SQLite to PostgreSQL: copy the promise (what was posted, what waits, the publish log)
into a new, upgraded, empty database, so that the nodes start where the single process stopped.

Copied in one transaction on the target: a failure leaves it empty, never half-filled.
Rows that belong to running processes (who is alive, who holds a lease, who is signed in)
stay behind, and so do the claims and leases written into copied rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import BigInteger, Connection, Integer, Table, exists, select, text

from autopublish.errors import StateError
from autopublish.store import schema
from autopublish.store.connection import Database

# Whose rows describe a running process, not the promise: never copied.
RUNTIME_TABLES = frozenset({"meta", "nodes", "channel_leases", "web_sessions", "sign_in_attempts"})
# Columns of copied rows that name a process of the old database: cleared on the way.
RUNTIME_COLUMNS = {"feeds": ("lease_node", "lease_until", "lease_at"), "deliveries": ("claimed_by",)}
CHUNK = 1000  # rows per INSERT round trip


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied, in copy order

    def lines(self) -> list[str]:
        return [f"{name}: {count} rows" for name, count in self.rows.items()]


def copied_tables() -> list[Table]:
    """The tables copied, parents before children (a delivery's article exists before it)."""
    return [table for table in schema.metadata.sorted_tables if table.name not in RUNTIME_TABLES]


def copy_database(source: Database, target: Database) -> CopyReport:
    """Copy every promise-bearing row of ``source`` (SQLite) into ``target`` (PostgreSQL, empty).

    Both must be at the current schema (open them through Store first). A delivery left
    *sending* must already be *uncertain* (Store.recover_interrupted), as at any start.
    """
    if not source.is_sqlite:
        raise StateError("autopublish db import-sqlite copies from a SQLite state database only")
    if target.is_sqlite:
        raise StateError("autopublish db import-sqlite copies into the PostgreSQL database named by [settings] database; "
                         "this config has none, so its state already lives in SQLite")
    report = CopyReport()
    with source.read() as src, target.tx() as dst:
        _refuse_unless_empty(dst, target)
        if src.execute(select(schema.deliveries.c.id).where(schema.deliveries.c.status == "sending").limit(1)).first():
            raise StateError("The SQLite state database has a post in flight; start and stop autopublish once on it "
                             "(that settles it), then copy again")
        for table in copied_tables():
            report.rows[table.name] = _copy_table(src, dst, table)
        for table in copied_tables():
            _advance_sequence(dst, table)
    return report


def _refuse_unless_empty(conn: Connection, target: Database) -> None:
    for table in copied_tables():
        if conn.execute(select(exists().select_from(table))).scalar():
            raise StateError(f"The database {target.shown} already holds autopublish data (table {table.name}); "
                             "copy only into a new, empty database made with autopublish db upgrade")


def _copy_table(src: Connection, dst: Connection, table: Table) -> int:
    cleared = dict.fromkeys(RUNTIME_COLUMNS.get(table.name, ()))
    ordered = select(table).order_by(*table.primary_key.columns)  # ids in order: a repost's original comes first
    copied = 0
    for part in src.execution_options(yield_per=CHUNK).execute(ordered).mappings().partitions(CHUNK):
        rows = [{**row, **cleared} for row in part]
        dst.execute(table.insert(), rows)
        copied += len(rows)
    return copied


def _advance_sequence(conn: Connection, table: Table) -> None:
    """A copied id column's sequence starts after the highest copied id (else the next insert collides)."""
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or not isinstance(keys[0].type, Integer | BigInteger):
        return
    name, column = table.name, keys[0].name
    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', '{column}'), "
                      f"COALESCE((SELECT MAX({column}) FROM {name}), 0) + 1, false)"))
