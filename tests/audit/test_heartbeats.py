"""Scheduled checks beat to the custodian when they run, and the custodian alerts on
its own channel when one stops: tried with a real custodian process and intervals of
seconds."""

import json
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.custody import server_fixture
from tests.custody.conftest import configure
from yobikake.custody.alerts import AlertKind
from yobikake.custody.protocol import Heartbeat
from yobikake.exports.retention import enforce_retention
from yobikake.vault import custodian as port
from yobikake.vault.audit_report import report


def beats(custody) -> dict[str, int]:
    rows = custody.custodian.ledger.query("SELECT source, beats FROM heartbeats")
    return dict(rows)


def test_each_scheduled_check_beats_when_it_runs(world, custody):
    call_command("audit", "sweep", stdout=StringIO(), stderr=StringIO())
    assert beats(custody) == {Heartbeat.AUDIT_SWEEP: 1}
    enforce_retention(dry_run=True)  # changes nothing: not the schedule's run
    assert Heartbeat.RETENTION not in beats(custody)
    call_command("retention", "enforce", stdout=StringIO())
    report(custody)
    assert beats(custody) == {
        Heartbeat.AUDIT_SWEEP: 1,
        Heartbeat.RETENTION: 1,
        Heartbeat.RECONCILE: 1,
    }


def test_a_sweep_that_finds_the_log_broken_still_says_it_ran(world, custody):
    from django.db import connection

    from yobikake.audit import guards

    guards.remove(connection)
    try:
        with pytest.raises(CommandError, match="guard"):
            call_command("audit", "sweep", stdout=StringIO(), stderr=StringIO())
    finally:
        guards.install(connection)
    assert beats(custody) == {Heartbeat.AUDIT_SWEEP: 1}


def test_a_sweep_dropped_from_the_schedule_is_a_custody_alert(world, tmp_path, monkeypatch):
    root = tmp_path / "custody-process"
    home, _ = server_fixture.init(root)
    configure(
        home,
        heartbeats={"application": 3600, "audit_sweep": 3, "reconcile": 3600, "retention": 3600},
        heartbeat_check_seconds=1,
    )
    server = server_fixture.start(root)
    client = server.client()
    monkeypatch.setattr(port, "_build", lambda *args: client)
    try:
        for _ in range(3):  # on schedule: quiet
            call_command("audit", "sweep", stdout=StringIO(), stderr=StringIO())
            time.sleep(1)
        assert AlertKind.CHECK_MISSED not in [a.kind for a in client.alerts()]
        deadline = time.monotonic() + 10  # then no more sweeps
        while time.monotonic() < deadline:
            missed = [a for a in client.alerts() if a.kind == AlertKind.CHECK_MISSED]
            if missed:
                break
            time.sleep(0.2)
        [alert] = missed
        assert alert.severity == "critical" and "audit_sweep" in alert.summary
        logged = [json.loads(line) for line in (home / "alerts.log").read_text().splitlines()]
        assert AlertKind.CHECK_MISSED in [line["kind"] for line in logged]
    finally:
        client.close()
        server.stop()


def test_the_web_server_and_the_task_worker_beat_while_they_run(fresh_home, tmp_path):
    """The real processes, on a home made by `yobikake migrate`, beating to a real
    custodian."""
    import sqlite3
    import subprocess
    import sys
    from contextlib import closing

    from tests.audit.fresh import YOBIKAKE

    fresh_home.migrate()
    server = server_fixture.start(tmp_path / "custody-process")
    env = {
        **fresh_home.env,
        "YOBIKAKE_CUSTODIAN_URL": server.url,
        "YOBIKAKE_CUSTODIAN_CLIENT_DIR": str(server.client_dir),
    }

    def beaten() -> dict[str, int]:
        with closing(sqlite3.connect(server.home / "ledger.sqlite3")) as ledger:
            return dict(ledger.execute("SELECT source, beats FROM heartbeats"))

    try:
        web = subprocess.Popen(
            [sys.executable, "-c", "import time, yobikake.wsgi; time.sleep(60)"], env=env
        )
        worker = subprocess.Popen([YOBIKAKE, "db_worker", "--no-startup-delay"], env=env)
        try:
            deadline = time.monotonic() + 30
            while beaten().get(Heartbeat.APPLICATION, 0) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert beaten()[Heartbeat.APPLICATION] >= 2  # one from each
        finally:
            for process in (web, worker):
                process.terminate()
                process.wait(timeout=10)
    finally:
        server.stop()
