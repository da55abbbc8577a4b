"""The task worker checks its start itself, however it is started: `python -m django
db_worker` (or django-admin) with Yobikake's settings refuses without every append-only
guard as `yobikake db_worker` does, and each start is checked and recorded once."""

import json
import os
import signal
import subprocess
import time

from tests.audit.fresh import YOBIKAKE, FreshHome
from tests.audit.test_startup import drop_one_guard, guard_alerts, started

WORKER = ("db_worker", "--no-startup-delay", "--interval", "0.1")


def worker_starts(home: FreshHome) -> list[dict]:
    rows = home.sql("SELECT details FROM audit_event WHERE tag = 'audit:process:start'")
    return [json.loads(details) for (details,) in rows]


def test_the_worker_started_through_django_refuses_without_a_guard_and_raises_a_critical_alert(
    fresh_home: FreshHome,
):
    fresh_home.migrate()
    guard = drop_one_guard(fresh_home)

    worker = started(
        fresh_home, "-m", "django", *WORKER, "--batch", "--no-reload", "--settings",
        "yobikake.settings",
    )  # fmt: skip
    assert worker.returncode != 0
    assert f"append-only guard missing: {guard}" in worker.stderr
    [(severity, state, summary)] = guard_alerts(fresh_home)
    assert (severity, state) == ("critical", "open")
    assert summary.startswith("worker start:") and guard in summary
    assert worker_starts(fresh_home) == []


def test_the_worker_started_through_yobikake_is_checked_and_recorded_once(
    fresh_home: FreshHome,
):
    fresh_home.migrate()
    worker = started(fresh_home, *WORKER, "--batch", "--no-reload")
    assert worker.returncode == 0, worker.stderr
    assert [start["process"] for start in worker_starts(fresh_home)] == ["worker"]


def test_a_reloading_worker_is_checked_once_in_the_process_that_runs_the_tasks(
    fresh_home: FreshHome,
):
    """With --reload a watching process starts the one that runs the tasks (again on each
    code change): only that one is checked."""
    fresh_home.migrate()
    worker = subprocess.Popen(
        [YOBIKAKE, *WORKER, "--reload"],
        env=fresh_home.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # the watcher and the worker it starts, stopped together
    )
    try:
        deadline = time.monotonic() + 60
        while not worker_starts(fresh_home):
            assert worker.poll() is None, worker.communicate()[1]
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        time.sleep(3)  # time enough for a second check, were there one
        assert worker.poll() is None, worker.communicate()[1]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.communicate(timeout=30)
    assert [start["process"] for start in worker_starts(fresh_home)] == ["worker"]
