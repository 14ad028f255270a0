"""Migrations (Alembic; the scripts ship inside the package, in migrations/versions).

``autopublish db upgrade`` applies them. SQLite upgrades itself when opened (one process
owns it). A PostgreSQL shared by several nodes is never changed behind their backs: a
node refuses an older schema and says to run ``autopublish db upgrade`` once. A SQLite
database written by the original store (meta.schema_version = 1, no Alembic table) is
stamped at revision 0001 and upgraded in place, keeping every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from autopublish.errors import StateError
from autopublish.store.connection import Database

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

SCRIPTS = Path(__file__).parent / "migrations"
# The newest script in migrations/versions (a test keeps them equal). Opening an up-to-date
# database compares with it and never imports Alembic, about 8 MB a daemon does not carry.
HEAD = "0009"
LEGACY_REVISIONS = {1: "0001"}  # meta.schema_version of the pre-Alembic store -> its revision


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # the Alembic revision, or the one a legacy database is equal to
    head: str
    legacy: bool  # written by the pre-Alembic store: needs a stamp before upgrading
    known: bool  # a revision this autopublish has scripts for

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(conn: Connection) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = conn
    return config


def head_revision() -> str:
    """The newest revision, as Alembic reads it from the scripts (HEAD must equal it)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(SCRIPTS)).get_current_head()
    assert head is not None
    return head


def _known(revision: str | None) -> bool:
    if revision is None or revision == HEAD:
        return True
    from alembic.script import ScriptDirectory

    return revision in {script.revision for script in ScriptDirectory(str(SCRIPTS)).walk_revisions()}


def schema_state(conn: Connection) -> SchemaState:
    head = HEAD
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        current = row[0] if row else None
        return SchemaState(current, head, False, _known(current))
    if "meta" in tables:
        row = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
        version = int(row[0]) if row else 1
        revision = LEGACY_REVISIONS.get(version)
        return SchemaState(revision, head, True, revision is not None)
    return SchemaState(None, head, False, True)


def check(db: Database, *, migrate: bool) -> SchemaState:
    """Make sure the schema is the one this code needs: upgrade (if allowed) or refuse in plain words."""
    with db.read() as conn:
        state = schema_state(conn)
    if not state.known:
        raise StateError(f"The database {db.shown} was written by a newer autopublish (schema {state.current}); upgrade autopublish")
    if state.up_to_date:
        return state
    if not migrate:
        if state.current is None:
            raise StateError(f"The database {db.shown} has no autopublish tables yet; run \"autopublish db upgrade\" once to create them, "
                             "then start autopublish")
        raise StateError(f"The database {db.shown} has an older schema ({state.current}) than this autopublish needs ({state.head}); "
                         "run \"autopublish db upgrade\" once (from any node), then start autopublish")
    return upgrade(db)


def upgrade(db: Database) -> SchemaState:
    """Apply every pending migration in one transaction (PostgreSQL: one upgrader at a time)."""
    with db.tx() as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(4412031)"))  # two upgraders never interleave
        state = schema_state(conn)
        if not state.known:
            raise StateError(f"The database {db.shown} was written by a newer autopublish (schema {state.current}); upgrade autopublish")
        from alembic import command

        config = _config(conn)
        if state.legacy and state.current is not None:
            command.stamp(config, state.current)
        if not state.up_to_date:
            command.upgrade(config, "head")
        after = schema_state(conn)
    return after
