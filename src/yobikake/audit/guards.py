"""Database triggers that refuse UPDATE, DELETE and TRUNCATE on the append-only tables.

They stop accidents and casual edits; a database administrator can drop them, which is
why the chain, its MACs and the signed checkpoints exist. Tests that flush the database
(transactional tests) switch them off around the flush with `guards_disabled`.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db.backends.base.base import BaseDatabaseWrapper

APPEND_ONLY_TABLES = ("audit_event", "audit_checkpoint")
MESSAGE = "audit tables are append-only"

_PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION yobikake_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}: % on %', TG_OP, TG_TABLE_NAME;
END
$$ LANGUAGE plpgsql
"""


def _pg_install(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_append_only_rows ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_append_only_truncate ON {table}",
        f"CREATE TRIGGER {table}_append_only_rows BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION yobikake_append_only()",
        f"CREATE TRIGGER {table}_append_only_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION yobikake_append_only()",
    ]


def _sqlite_install(table: str) -> list[str]:
    # SQLite has no TRUNCATE; a DELETE without WHERE still fires the row trigger.
    return [f"DROP TRIGGER IF EXISTS {table}_no_{op.lower()}" for op in ("UPDATE", "DELETE")] + [
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        for op in ("UPDATE", "DELETE")
    ]


def install_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [_PG_FUNCTION] + [s for t in APPEND_ONLY_TABLES for s in _pg_install(t)]
    if vendor == "sqlite":
        return [s for t in APPEND_ONLY_TABLES for s in _sqlite_install(t)]
    raise NotImplementedError(f"no append-only guard for {vendor}")


def remove_statements(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {t}_append_only_{kind} ON {t}"
            for t in APPEND_ONLY_TABLES
            for kind in ("rows", "truncate")
        ]
    return [
        f"DROP TRIGGER IF EXISTS {t}_no_{op}"
        for t in APPEND_ONLY_TABLES
        for op in ("update", "delete")
    ]


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
