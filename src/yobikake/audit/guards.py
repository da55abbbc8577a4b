"""Database triggers that refuse UPDATE, DELETE and TRUNCATE on the append-only tables,
and the check that nothing else on the audit tables gets round them.

They stop accidents and casual edits; a database administrator can drop them, which is
why the chain, its MACs and the signed checkpoints exist. Every process checks them as it
starts (`missing`, see audit/startup.py). SQLite drops a table's triggers when a migration
rebuilds the table to alter it, so a migration that alters an append-only table must
install them again after it (as 0005 does). Tests that flush the database (transactional
tests) switch them off around the flush with `guards_disabled`.

What else would defeat them, and is looked for too:
- SQLite: `REPLACE` (`INSERT OR REPLACE`) deletes the row it conflicts with without
  firing a delete trigger, so an insert whose key is taken is refused as well.
- PostgreSQL: a trigger fires only in "origin" mode unless it is enabled ALWAYS, and
  `session_replication_role = replica` (for a session, or kept for the database or a
  role) switches origin-mode triggers off without a change to the trigger itself. The
  guards are ALWAYS triggers, and a session in another mode, or such a kept setting, is
  named as missing.
- Any other trigger, rule or row-security policy on the audit tables or on the alert
  queue: one returning NULL or DO INSTEAD NOTHING drops alerts (or their events) while
  every guard is in place. `install` removes them.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

APPEND_ONLY_TABLES = ("audit_event", "audit_checkpoint")
# Tables on which nothing but the guards may act.
WATCHED_TABLES = (*APPEND_ONLY_TABLES, "audit_alert")
_KEYS = {"audit_event": "seq", "audit_checkpoint": "id"}
MESSAGE = "audit tables are append-only"
PG_FUNCTION = "yobikake_append_only"
REPLICA = "session_replication_role = replica"
KEPT_REPLICA = "session_replication_role kept for this database or role"

_PG_BODY = f"""
BEGIN
    RAISE EXCEPTION '{MESSAGE}: % on %', TG_OP, TG_TABLE_NAME;
END
"""
_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger AS $$
{_PG_BODY.strip()}
$$ LANGUAGE plpgsql
"""


def _pg_triggers(table: str) -> dict[str, str]:
    # Written as `pg_get_triggerdef` prints them, so the check can compare.
    return {
        f"{table}_append_only_rows": f"CREATE TRIGGER {table}_append_only_rows BEFORE DELETE "
        f"OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()",
        f"{table}_append_only_truncate": f"CREATE TRIGGER {table}_append_only_truncate BEFORE "
        f"TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()",
    }


def _sqlite_triggers(table: str) -> dict[str, str]:
    # SQLite has no TRUNCATE; a DELETE without WHERE still fires the row trigger.
    refuse = f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    key = _KEYS[table]
    return {
        f"{table}_no_update": f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} {refuse}",
        f"{table}_no_delete": f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} {refuse}",
        # A lookup of the primary key.
        f"{table}_no_replace": (
            f"CREATE TRIGGER {table}_no_replace BEFORE INSERT ON {table} WHEN EXISTS "  # noqa: S608
            f"(SELECT 1 FROM {table} WHERE {key} = NEW.{key}) {refuse}"
        ),
    }


def _triggers(vendor: str) -> dict[str, tuple[str, str]]:
    """Every guard of `vendor`: its name, and the table and statement that make it."""
    if vendor == "postgresql":
        make = _pg_triggers
    elif vendor == "sqlite":
        make = _sqlite_triggers
    else:
        raise NotImplementedError(f"no append-only guard for {vendor}")
    return {
        name: (table, create)
        for table in APPEND_ONLY_TABLES
        for name, create in make(table).items()
    }


def names(vendor: str) -> list[str]:
    return list(_triggers(vendor))


def _guard_tables(vendor: str) -> dict[str, str]:
    # A trigger is a guard by its name and its table: one named like a guard on another
    # table is someone else's.
    return {name: table for name, (table, _) in _triggers(vendor).items()}


def install_statements(vendor: str) -> list[str]:
    triggers = _triggers(vendor)
    statements = [_PG_FUNCTION] if vendor == "postgresql" else []
    statements += remove_statements(vendor) + [create for _, create in triggers.values()]
    if vendor == "postgresql":
        statements += [
            f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"
            for name, (table, _) in triggers.items()
        ]
    return statements


def remove_statements(vendor: str) -> list[str]:
    on = vendor == "postgresql"
    return [
        f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if on else "")
        for name, (table, _) in _triggers(vendor).items()
    ]


# pg_get_triggerdef names the table and the function with their schema.
_SCHEMA = re.compile(r'\b(ON|FUNCTION) (?:"?\w+"?\.)')

_PG_TRIGGERS = """
SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid), t.tgenabled, p.prosrc, l.lanname
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_language l ON l.oid = p.prolang
WHERE NOT t.tgisinternal AND t.tgrelid = ANY(%s::regclass[])
"""
_PG_RULES = """
SELECT r.rulename, c.relname FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
WHERE r.ev_class = ANY(%s::regclass[])
"""
_PG_ROW_SECURITY = """
SELECT relname FROM pg_class
WHERE oid = ANY(%s::regclass[]) AND (relrowsecurity OR relforcerowsecurity)
"""
# A setting kept for a role applies when that role logs in, to this database or to all.
_PG_KEPT_REPLICA = """
SELECT count(*) FROM pg_db_role_setting s, unnest(s.setconfig) AS c(setting)
WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
  AND s.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = session_user),
                    (SELECT oid FROM pg_roles WHERE rolname = current_user))
  AND split_part(c.setting, '=', 1) = 'session_replication_role'
  AND c.setting <> 'session_replication_role=origin'
"""


@dataclass(frozen=True)
class _Foreign:
    """A trigger, rule or row security on a watched table that is not a guard."""

    kind: str  # trigger, rule, row security
    table: str
    name: str = ""

    def __str__(self) -> str:
        return (
            f"{self.kind} {self.name} on {self.table}"
            if self.name
            else f"{self.kind} on {self.table}"
        )

    def removal(self, connection: BaseDatabaseWrapper) -> str:
        table = connection.ops.quote_name(self.table)
        if self.kind == "row security":
            return f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY"
        on = f" ON {table}" if connection.vendor == "postgresql" else ""
        return f"DROP {self.kind.upper()} IF EXISTS {connection.ops.quote_name(self.name)}{on}"


@dataclass
class _State:
    in_force: dict[str, str]  # guard name → its definition, for those that fire
    foreign: list[_Foreign]
    bypasses: list[str]  # settings under which the guards do not fire


def _pg_state(cursor: CursorWrapper) -> _State:
    tables = list(WATCHED_TABLES)
    state = _State({}, [], [])
    guards = _guard_tables("postgresql")
    cursor.execute(_PG_TRIGGERS, [tables])
    for name, table, definition, enabled, body, language in cursor.fetchall():
        if guards.get(name) != table:
            state.foreign.append(_Foreign("trigger", table, name))
        # "A" fires in every session whatever its replication role; "O" (the default)
        # only in origin mode, "R" only on a replica, "D" never.
        elif enabled == "A" and language == "plpgsql" and body.strip() == _PG_BODY.strip():
            state.in_force[name] = _SCHEMA.sub(r"\1 ", definition)
    cursor.execute(_PG_RULES, [tables])
    state.foreign += [_Foreign("rule", table, name) for name, table in cursor.fetchall()]
    cursor.execute(_PG_ROW_SECURITY, [tables])
    state.foreign += [_Foreign("row security", table) for (table,) in cursor.fetchall()]
    cursor.execute("SELECT current_setting('session_replication_role')")
    if cursor.fetchone()[0] != "origin":
        state.bypasses.append(REPLICA)
    cursor.execute(_PG_KEPT_REPLICA)
    if cursor.fetchone()[0]:
        state.bypasses.append(KEPT_REPLICA)
    return state


def _sqlite_state(cursor: CursorWrapper) -> _State:
    state = _State({}, [], [])
    guards = _guard_tables("sqlite")
    placeholders = ", ".join(["%s"] * len(WATCHED_TABLES))
    cursor.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master "  # noqa: S608 - placeholders only
        f"WHERE type = 'trigger' AND tbl_name IN ({placeholders})",
        list(WATCHED_TABLES),
    )
    for name, table, create in cursor.fetchall():
        if guards.get(name) == table:
            state.in_force[name] = create
        else:
            state.foreign.append(_Foreign("trigger", table, name))
    return state


def _state(connection: BaseDatabaseWrapper) -> _State:
    with connection.cursor() as cursor:
        return _pg_state(cursor) if connection.vendor == "postgresql" else _sqlite_state(cursor)


def missing(connection: BaseDatabaseWrapper) -> list[str]:
    """What is not as installed: each guard gone, switched off or changed so that it no
    longer refuses every UPDATE, DELETE and TRUNCATE (a condition, a column list, a
    function that lets the change through, on PostgreSQL one not enabled ALWAYS); each
    other trigger, rule or row security on the audit tables and the alert queue; and on
    PostgreSQL a replication role other than origin, in this session or kept."""
    expected = {name: create for name, (_, create) in _triggers(connection.vendor).items()}
    state = _state(connection)
    return (
        [name for name, create in expected.items() if state.in_force.get(name) != create]
        + [str(foreign) for foreign in state.foreign]
        + state.bypasses
    )


def install(connection: BaseDatabaseWrapper) -> None:
    """Put every guard in place, and remove every other trigger, rule and row security
    from the audit tables and the alert queue. A replication role kept for the database
    or a role is left to the database's administrator to reset: it is not the
    application's to change."""
    foreign = _state(connection).foreign
    with connection.cursor() as cursor:
        for intruder in foreign:
            cursor.execute(intruder.removal(connection))
        for statement in install_statements(connection.vendor):
            cursor.execute(statement)


def remove(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
        for statement in remove_statements(connection.vendor):
            cursor.execute(statement)


@contextmanager
def guards_disabled(connection: BaseDatabaseWrapper) -> Iterator[None]:
    remove(connection)
    try:
        yield
    finally:
        install(connection)
