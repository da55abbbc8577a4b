"""The start-up check finds an append-only guard that is gone, switched off or hollowed
out, not only one whose name is missing."""

import pytest
from django.db import connection

from yobikake.audit import guards

pytestmark = pytest.mark.django_db


def sql(*statements):
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


SQLITE_ATTACKS = {
    "dropped": ["DROP TRIGGER audit_event_no_update"],
    # Same name, same table, never fires.
    "never fires": [
        "DROP TRIGGER audit_event_no_update",
        "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event WHEN 0 "
        "BEGIN SELECT RAISE(ABORT, 'audit tables are append-only'); END",
    ],
    "watches one column": [
        "DROP TRIGGER audit_event_no_update",
        "CREATE TRIGGER audit_event_no_update BEFORE UPDATE OF mac ON audit_event "
        "BEGIN SELECT RAISE(ABORT, 'audit tables are append-only'); END",
    ],
}
PG_ATTACKS = {
    "dropped": ["DROP TRIGGER audit_event_append_only_rows ON audit_event"],
    "disabled": ["ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only_rows"],
    "replica only": ["ALTER TABLE audit_event ENABLE REPLICA TRIGGER audit_event_append_only_rows"],
    "hollowed function": [
        "CREATE OR REPLACE FUNCTION yobikake_append_only() RETURNS trigger AS $$ "
        "BEGIN RETURN NEW; END $$ LANGUAGE plpgsql"
    ],
    "watches one column": [
        "DROP TRIGGER audit_event_append_only_rows ON audit_event",
        "CREATE TRIGGER audit_event_append_only_rows BEFORE UPDATE OF mac OR DELETE "
        "ON audit_event FOR EACH ROW EXECUTE FUNCTION yobikake_append_only()",
    ],
}


def test_every_guard_is_in_place_once_installed():
    assert guards.missing(connection) == []
    assert set(guards.names(connection.vendor)) >= {
        f"{table}_{suffix}"
        for table in guards.APPEND_ONLY_TABLES
        for suffix in (
            ("append_only_rows", "append_only_truncate")
            if connection.vendor == "postgresql"
            else ("no_update", "no_delete")
        )
    }


def test_a_guard_gone_switched_off_or_hollowed_out_is_missing():
    attacks = PG_ATTACKS if connection.vendor == "postgresql" else SQLITE_ATTACKS
    for attack, statements in attacks.items():
        sql(*statements)
        missing = guards.missing(connection)
        # A hollowed function takes every guard with it; the others, the one attacked.
        assert any(name.startswith("audit_event_") for name in missing), attack
        guards.install(connection)
        assert guards.missing(connection) == [], attack


def test_removing_the_guards_leaves_every_one_missing():
    guards.remove(connection)
    assert guards.missing(connection) == guards.names(connection.vendor)
