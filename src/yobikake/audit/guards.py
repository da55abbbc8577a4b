"""Database triggers that refuse UPDATE, DELETE and TRUNCATE on the append-only tables.

They stop accidents and casual edits; a database administrator can drop them, which is
why the chain, its MACs and the signed checkpoints exist. Every process checks them as it
starts (`missing`, see audit/startup.py). SQLite drops a table's triggers when a migration
rebuilds the table to alter it, so a migration that alters an append-only table must
install them again after it (as 0005 does). Tests that flush the database (transactional
tests) switch them off around the flush with `guards_disabled`.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.db.backends.base.base import BaseDatabaseWrapper

APPEND_ONLY_TABLES = ("audit_event", "audit_checkpoint")
MESSAGE = "audit tables are append-only"
PG_FUNCTION = "yobikake_append_only"

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
    return {
        f"{table}_no_{op.lower()}": f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON "
        f"{table} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        for op in ("UPDATE", "DELETE")
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


def install_statements(vendor: str) -> list[str]:
    triggers = _triggers(vendor)
    statements = [_PG_FUNCTION] if vendor == "postgresql" else []
    return statements + remove_statements(vendor) + [create for _, create in triggers.values()]


def remove_statements(vendor: str) -> list[str]:
    on = vendor == "postgresql"
    return [
        f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if on else "")
        for name, (table, _) in _triggers(vendor).items()
    ]


# pg_get_triggerdef names the table and the function with their schema.
_SCHEMA = re.compile(r'\b(ON|FUNCTION) (?:"?\w+"?\.)')

_PG_INSTALLED = """
SELECT t.tgname, pg_get_triggerdef(t.oid), t.tgenabled, p.prosrc, l.lanname
FROM pg_trigger t
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_language l ON l.oid = p.prolang
WHERE NOT t.tgisinternal AND t.tgrelid = ANY(%s::regclass[])
"""


def missing(connection: BaseDatabaseWrapper) -> list[str]:
    """The guards that are not in place: gone, switched off, or changed so that they
    no longer refuse every UPDATE, DELETE and TRUNCATE (a condition, a column list, a
    function that lets the change through)."""
    expected = {name: create for name, (_, create) in _triggers(connection.vendor).items()}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_INSTALLED, [list(APPEND_ONLY_TABLES)])
            installed = {
                name: _SCHEMA.sub(r"\1 ", definition)
                for name, definition, enabled, body, language in cursor.fetchall()
                # "O" fires in every ordinary session, "A" always; "D" never, "R" only on a
                # replica.
                if enabled in ("O", "A")
                and language == "plpgsql"
                and body.strip() == _PG_BODY.strip()
            }
        else:
            cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            installed = dict(cursor.fetchall())
    return [name for name, create in expected.items() if installed.get(name) != create]


def install(connection: BaseDatabaseWrapper) -> None:
    with connection.cursor() as cursor:
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
