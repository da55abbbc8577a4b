"""What an insider with a shell on the application host and the database tried against
the start-up checks, each on a home made by the real `yobikake migrate`: overwriting an
event with REPLACE, switching the triggers off with the replication role, a trigger of
their own that swallows alerts, a forged start that moves the baseline, a shell started
with loosened settings, a data file or a sitecustomize.py that changes what runs."""

import json
from pathlib import Path

import pytest

from tests.audit.fresh import DRIVER_ERRORS, FreshHome
from tests.audit.test_startup import (
    CHECKPOINT_ROW,
    EVENT_ROW,
    changes,
    control_alerts,
    guard_alerts,
    started,
)


def test_replace_into_an_event_or_a_checkpoint_is_refused(fresh_home: FreshHome):
    """SQLite's REPLACE deletes the row it conflicts with without firing the delete
    trigger; PostgreSQL's nearest, an upsert, fires the update trigger."""
    fresh_home.migrate()
    fresh_home.sql(EVENT_ROW)
    fresh_home.sql(CHECKPOINT_ROW)
    [(checkpoint_id,)] = fresh_home.sql("SELECT id FROM audit_checkpoint")
    event = EVENT_ROW.replace("'auth:session:logout'", "'auth:session:login'")
    checkpoint = CHECKPOINT_ROW.replace("(head_seq,", "(id, head_seq,").replace(
        "VALUES (1000,", f"VALUES ({checkpoint_id}, 1000,"
    )
    if fresh_home.postgresql:
        statements = [
            event + " ON CONFLICT (seq) DO UPDATE SET tag = EXCLUDED.tag",
            checkpoint + " ON CONFLICT (id) DO UPDATE SET key_id = 'edited'",
        ]
    else:
        statements = [
            event.replace("INSERT INTO", "REPLACE INTO"),
            event.replace("INSERT INTO", "INSERT OR REPLACE INTO"),
            checkpoint.replace("INSERT INTO", "INSERT OR REPLACE INTO"),
        ]
    for statement in statements:
        with pytest.raises(DRIVER_ERRORS, match="append-only"):
            fresh_home.sql(statement)
    assert fresh_home.sql("SELECT tag FROM audit_event WHERE seq = 1000") == [
        ("auth:session:logout",)
    ]
    assert fresh_home.sql("SELECT key_id FROM audit_checkpoint") == [("x",)]


def database_name(home: FreshHome) -> str:
    assert home.database_url is not None
    return home.database_url.rsplit("/", 1)[1]


def test_replica_mode_neither_passes_the_triggers_nor_lets_a_process_start(
    fresh_home: FreshHome,
):
    fresh_home.migrate()
    fresh_home.sql(EVENT_ROW)
    if not fresh_home.postgresql:
        # SQLite has no replication role, and no setting kept in the database that
        # switches triggers off: the guards refuse as in test_startup.
        with pytest.raises(DRIVER_ERRORS, match="append-only"):
            fresh_home.sql("UPDATE audit_event SET reason = 'edited' WHERE seq = 1000")
        return
    # In the administrator's own session.
    with pytest.raises(DRIVER_ERRORS, match="append-only"):
        fresh_home.sql(
            "SET session_replication_role = replica;"
            " UPDATE audit_event SET reason = 'edited' WHERE seq = 1000"
        )
    # For every session of this database, or of its role in it.
    name = database_name(fresh_home)
    for setting, reset in [
        (
            f'ALTER DATABASE "{name}" SET session_replication_role = replica',
            f'ALTER DATABASE "{name}" RESET session_replication_role',
        ),
        (
            f'ALTER ROLE CURRENT_USER IN DATABASE "{name}" SET session_replication_role = replica',
            f'ALTER ROLE CURRENT_USER IN DATABASE "{name}" RESET session_replication_role',
        ),
    ]:
        fresh_home.sql(setting)
        with pytest.raises(DRIVER_ERRORS, match="append-only"):
            fresh_home.sql("DELETE FROM audit_event WHERE seq = 1000")
        web = started(fresh_home, "-c", "import yobikake.wsgi")
        assert web.returncode != 0
        assert "session_replication_role" in web.stderr
        fresh_home.sql(reset)
    alerts = guard_alerts(fresh_home)
    assert len(alerts) == 2 and all("session_replication_role" in s for _, _, s in alerts)
    assert {(severity, state) for severity, state, _ in alerts} == {("critical", "open")}
    assert started(fresh_home, "-c", "import yobikake.wsgi").returncode == 0


def swallow_alerts(home: FreshHome) -> str:
    """A trigger of the insider's own that makes alert rows vanish as they are written."""
    if home.postgresql:
        home.sql(
            "CREATE FUNCTION drop_row() RETURNS trigger AS $$ BEGIN RETURN NULL; END $$"
            " LANGUAGE plpgsql"
        )
        home.sql(
            "CREATE TRIGGER audit_alert_swallowed BEFORE INSERT ON audit_alert"
            " FOR EACH ROW EXECUTE FUNCTION drop_row()"
        )
    else:
        home.sql(
            "CREATE TRIGGER audit_alert_swallowed BEFORE INSERT ON audit_alert"
            " BEGIN SELECT RAISE(IGNORE); END"
        )
    return "audit_alert_swallowed"


@pytest.mark.usefixtures("fresh_custody")
def test_a_trigger_that_swallows_alerts_is_found_and_verify_reports_it_without_crashing(
    fresh_home: FreshHome,
):
    fresh_home.migrate()
    assert fresh_home.run("audit", "verify").returncode == 0
    # An alert raised and then deleted: verify puts it back, into the swallowing trigger.
    fresh_home.run("-c", "import yobikake.wsgi", YOBIKAKE_REVEAL_BUDGET_OPERATOR="152")
    assert len(control_alerts(fresh_home)) == 1
    fresh_home.sql("DELETE FROM audit_alert")
    trigger = swallow_alerts(fresh_home)

    verify = started(fresh_home, "audit", "verify")
    assert verify.returncode == 1
    assert "Traceback" not in verify.stderr
    assert trigger in verify.stderr
    web = started(fresh_home, "-c", "import yobikake.wsgi")
    assert web.returncode != 0 and trigger in web.stderr

    install = started(fresh_home, "audit", "guards", "--install")
    assert install.returncode == 0, install.stderr
    verify = started(fresh_home, "audit", "verify")
    assert verify.returncode == 1  # the alert rows swallowed meanwhile are put back now
    assert "Traceback" not in verify.stderr
    rules = {rule for (rule,) in fresh_home.sql("SELECT rule FROM audit_alert")}
    assert {"controls_changed", "alert_tampered", "append_only_guard_missing"} <= rules


def forge_start(home: FreshHome, **env: str) -> None:
    """What the application's own code lets its host's administrator do: append a start
    event, MAC and all, with the settings they are about to start with."""
    forged = home.run(
        "-c",
        "import django, os;"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'yobikake.settings');"
        "django.setup();"
        "from django.db import transaction;"
        "from yobikake.audit.fingerprint import fingerprint;"
        "from yobikake.audit.keys import audit_keys;"
        "from yobikake.audit.services import append_event;"
        "from yobikake.audit.tags import AuditTag;"
        "details = {'process': 'web', **fingerprint(audit_keys().mac_key())};"
        "transaction.atomic()(append_event)(tag=AuditTag.PROCESS_START, actor=None,"
        " details=details)",
        **env,
    )
    assert forged.returncode == 0, forged.stderr


@pytest.mark.usefixtures("fresh_custody")
def test_a_forged_start_that_moves_the_baseline_is_found_by_verify(fresh_home: FreshHome):
    fresh_home.migrate()
    assert fresh_home.run("audit", "verify").returncode == 0
    loosened = {"YOBIKAKE_REVEAL_BUDGET_OPERATOR": "152"}
    forge_start(fresh_home, **loosened)
    web = fresh_home.run("-c", "import yobikake.wsgi", **loosened)
    assert web.returncode == 0, web.stderr  # compared with the forged start: no change

    verify = started(fresh_home, "audit", "verify", **loosened)
    assert verify.returncode == 1
    assert "reveal_budget_operator 60 → 152" in verify.stderr
    [(severity, summary)] = control_alerts(fresh_home)
    assert severity == "critical" and "reveal_budget_operator 60 → 152" in summary
    [change] = changes(fresh_home)
    assert (change["setting"], change["old"], change["new"]) == ("reveal_budget_operator", 60, 152)

    # Raised once: the next sweep finds it recorded.
    sweep = started(fresh_home, "audit", "sweep", **loosened)
    assert sweep.returncode == 0, sweep.stderr
    assert len(control_alerts(fresh_home)) == 1


def starts(home: FreshHome) -> list[dict]:
    rows = home.sql("SELECT details FROM audit_event WHERE tag = 'audit:process:start'")
    return [json.loads(details) for (details,) in rows]


@pytest.mark.usefixtures("fresh_custody")
def test_a_shell_or_any_other_command_started_through_yobikake_records_its_start(
    fresh_home: FreshHome,
):
    fresh_home.migrate()
    assert fresh_home.run("audit", "verify").returncode == 0
    shell = fresh_home.run(
        "shell", "-c", "print('in the shell')", YOBIKAKE_REVEAL_BUDGET_OPERATOR="152"
    )
    assert shell.returncode == 0, shell.stderr
    assert "in the shell" in shell.stdout
    guards = fresh_home.run("audit", "guards", YOBIKAKE_REVEAL_BUDGET_OPERATOR="152")
    assert guards.returncode == 0, guards.stderr
    client = ["--", "-c", "SELECT 1"] if fresh_home.postgresql else ["--", "SELECT 1;"]
    dbshell = fresh_home.run("dbshell", *client, YOBIKAKE_REVEAL_BUDGET_OPERATOR="152")
    assert dbshell.returncode == 0, dbshell.stderr

    recorded = starts(fresh_home)
    assert [s["process"] for s in recorded] == [
        "audit",
        "command:shell",
        "command:audit",
        "command:dbshell",
    ]
    assert recorded[1]["reveal_budget_operator"] == 152
    [(severity, summary)] = control_alerts(fresh_home)
    assert severity == "critical"
    assert summary.startswith("command:shell started with changed controls")
    assert "reveal_budget_operator 60 → 152" in summary


@pytest.fixture
def site(installed_copy: Path) -> Path:
    return installed_copy.parent


@pytest.mark.usefixtures("fresh_custody")
def test_a_data_file_a_sitecustomize_or_another_python_path_is_noticed_at_the_next_start(
    fresh_home: FreshHome, installed_copy: Path, site: Path, tmp_path: Path
):
    fresh_home.migrate()
    assert fresh_home.run("audit", "verify").returncode == 0

    [data] = sorted((installed_copy / "jp" / "data").glob("*.tsv"))[:1]
    data.write_bytes(data.read_bytes() + b"\n")
    assert fresh_home.run("audit", "verify").returncode == 0
    [(_, summary)] = control_alerts(fresh_home)
    assert "code changed" in summary

    (site / "sitecustomize.py").write_text("import os\nos.environ['TZ'] = 'UTC'\n")
    assert fresh_home.run("audit", "verify").returncode == 0
    assert "sitecustomize changed" in control_alerts(fresh_home)[1][1]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    fresh_home.env["PYTHONPATH"] += f":{elsewhere}"
    assert fresh_home.run("audit", "verify").returncode == 0
    summary = control_alerts(fresh_home)[2][1]
    assert "python_env changed" in summary and "sys_path changed" in summary
    recorded = starts(fresh_home)
    assert all(isinstance(s["sys_path"], str) for s in recorded)
    # How a process is launched (a script, `-c`, `-m`) is not a change.
    web = fresh_home.run("-c", "import yobikake.wsgi")
    assert web.returncode == 0, web.stderr
    assert len(control_alerts(fresh_home)) == 3


def test_the_web_refuses_to_start_in_replica_mode_from_its_environment(fresh_home: FreshHome):
    fresh_home.migrate()
    replica = {"PGOPTIONS": "-c session_replication_role=replica"}
    web = started(fresh_home, "-c", "import yobikake.wsgi", **replica)
    if not fresh_home.postgresql:
        assert web.returncode == 0, web.stderr  # libpq's variable means nothing to SQLite
        return
    assert web.returncode != 0
    assert "session_replication_role = replica" in web.stderr
