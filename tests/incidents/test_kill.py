"""A scoping killed part-way (kill -9 of the task worker) does not read "scoping" for
ever: the next worker to start marks it interrupted, on the record and to the security
officer, whose page says so and takes the file again."""

import signal
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from tests.custody_helpers import custodian_process
from tests.incidents.leaks import load
from tests.incidents.test_scoping import retyped, write_csv
from tests.intake.test_kill import database_env, start_worker
from tests.processes import alive, children_of
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.incidents.models import Incident, Match
from yobikake.synth.people import synthetic_people


def finished(worker) -> None:
    _out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err.decode()
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_scoping_marks_it_interrupted_and_the_officer_scopes_again(
    world, as_user, tmp_path, settings, request
):
    # The workers ask the custodian which rows are canaries, as the test's process does.
    reach_custodian = custodian_process(request)
    home = tmp_path / "home"
    home.mkdir()
    settings.YOBIKAKE_HOME = home
    stored = synthetic_people(20, seed=31, fiscal_year=2022)
    load(world, world.insurer_a, world.staff_a, 2022, stored)
    named = [p for p in stored if p.phone][:10]
    strangers = synthetic_people(40_000, seed=32, fiscal_year=2022, city="岐阜県よそ市")
    leaked = write_csv(tmp_path, [retyped(p) for p in named + strangers]).read_bytes()
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    client = as_user(world.security)
    upload = SimpleUploadedFile("leak.csv", leaked)
    client.post("/incidents/new/", {"title": "名簿業者", "aware_on": "2026-11-20", "file": upload})
    incident = Incident.objects.get()
    connection.close()
    env = database_env() | reach_custodian
    env.pop("YOBIKAKE_TASKS_BACKEND", None)

    worker = start_worker(env)
    deadline = time.monotonic() + 60
    while not Incident.objects.filter(state=Incident.State.RUNNING).exists():
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.5)  # well into the rows
    assert worker.poll() is None, "the scoping finished before it could be killed"
    helpers = children_of(worker.pid)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in helpers):
        assert time.monotonic() < deadline, "a helper of the killed worker lives on"
        time.sleep(0.05)
    connection.close()
    assert Incident.objects.get().state == Incident.State.RUNNING  # it never finished

    # The next worker to start finds the scoping without its process and says so.
    finished(start_worker(env, "--batch"))
    incident.refresh_from_db()
    assert (incident.state, incident.error_code) == ("failed", "interrupted")
    assert incident.finished_at and not Match.objects.exists()
    event = Event.objects.get(tag=AuditTag.INCIDENT_SCOPE)
    assert (event.outcome, event.reason) == (Event.Outcome.DENIED, "interrupted")
    assert event.actor_user_id == world.security.pk
    alert = Alert.objects.get(rule="scoping_interrupted")
    assert (alert.event_seq, alert.severity) == (event.seq, Alert.Severity.WARNING)
    assert f"incident #{incident.pk}" in alert.summary
    assert [p.name for p in (home / "uploads").iterdir()] == []

    # The officer's page says it was interrupted and takes the same file again.
    page = client.get(f"/incidents/{incident.pk}/")
    assert "中断" in page.text
    assert f'action="/incidents/{incident.pk}/scope/"' in page.text
    again = SimpleUploadedFile("leak.csv", leaked)
    response = client.post(f"/incidents/{incident.pk}/scope/", {"file": again})
    assert response.status_code == 302
    assert response["Location"] == f"/incidents/{incident.pk}/"
    connection.close()
    finished(start_worker(env, "--batch"))
    incident.refresh_from_db()
    assert incident.state == Incident.State.SCOPED, incident.error_message
    assert (incident.error_code, incident.persons) == ("", len(named))
    assert Event.objects.filter(tag=AuditTag.INCIDENT_RESCOPE).count() == 1
    assert [p.name for p in (home / "uploads").iterdir()] == []
