"""The start-up check finds an append-only guard that is gone, switched off or hollowed
out, not only one whose name is missing; and anything else on the audit tables that
would get round the guards or swallow an alert (a trigger or rule of someone else's,
row security, a session or database set to replica mode)."""

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
    # Fires in ordinary sessions only: `session_replication_role = replica` passes it.
    "origin only": ["ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only_rows"],
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


SQLITE_INTRUDERS = {
    # An alert row silently not written.
    "audit_alert_swallowed": "CREATE TRIGGER audit_alert_swallowed BEFORE INSERT ON audit_alert"
    " BEGIN SELECT RAISE(IGNORE); END",
    # Alert events silently not written.
    "audit_event_quiet": "CREATE TRIGGER audit_event_quiet BEFORE INSERT ON audit_event"
    " WHEN NEW.tag = 'alert:record:raise' BEGIN SELECT RAISE(IGNORE); END",
}
_PG_DROP = (
    "CREATE OR REPLACE FUNCTION drop_row() RETURNS trigger AS $$ BEGIN RETURN NULL; END $$"
    " LANGUAGE plpgsql"
)
PG_INTRUDERS = {
    "audit_alert_swallowed": [
        _PG_DROP,
        "CREATE TRIGGER audit_alert_swallowed BEFORE INSERT ON audit_alert"
        " FOR EACH ROW EXECUTE FUNCTION drop_row()",
    ],
    "audit_event_quiet": [
        _PG_DROP,
        "CREATE TRIGGER audit_event_quiet BEFORE INSERT ON audit_event FOR EACH ROW"
        " WHEN (NEW.tag = 'alert:record:raise') EXECUTE FUNCTION drop_row()",
    ],
    "rule audit_alert_hidden": [
        "CREATE RULE audit_alert_hidden AS ON INSERT TO audit_alert"
        " WHERE NEW.severity = 'critical' DO INSTEAD NOTHING"
    ],
    "rule audit_event_kept": [
        "CREATE RULE audit_event_kept AS ON UPDATE TO audit_event DO INSTEAD NOTHING"
    ],
    # A guard's name on the alert queue.
    "trigger audit_event_append_only_rows on audit_alert": [
        _PG_DROP,
        "CREATE TRIGGER audit_event_append_only_rows BEFORE INSERT ON audit_alert"
        " FOR EACH ROW EXECUTE FUNCTION drop_row()",
    ],
    "row security on audit_alert": [
        "ALTER TABLE audit_alert ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE audit_alert FORCE ROW LEVEL SECURITY",
        "CREATE POLICY audit_alert_routine ON audit_alert USING (severity <> 'critical')",
    ],
}


def test_a_trigger_rule_or_policy_of_someone_elses_on_the_audit_tables_is_found_and_removed():
    """They would drop alerts (or their events) while every guard is in place."""
    if connection.vendor == "postgresql":
        attacks = PG_INTRUDERS
    else:
        attacks = {name: [create] for name, create in SQLITE_INTRUDERS.items()}
    for intruder, statements in attacks.items():
        sql(*statements)
        assert any(intruder in problem for problem in guards.missing(connection)), intruder
        guards.install(connection)
        assert guards.missing(connection) == [], intruder


def test_a_session_in_replica_mode_is_named():
    if connection.vendor != "postgresql":
        # SQLite has no replication role; its triggers fire in every connection that
        # has not switched them off itself (see docs/threat-model.md).
        assert guards.missing(connection) == []
        return
    sql("SET session_replication_role = replica")
    try:
        assert guards.missing(connection) == ["session_replication_role = replica"]
    finally:
        sql("SET session_replication_role = origin")


def test_removing_the_guards_leaves_every_one_missing():
    guards.remove(connection)
    assert guards.missing(connection) == guards.names(connection.vendor)
