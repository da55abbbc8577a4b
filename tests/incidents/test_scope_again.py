"""A scoping whose process is gone is marked interrupted by the next worker to start (one
whose process lives is left alone), and the security officer scopes the same file again;
another file, an incident that did not fail, or anyone else is refused, on the record."""

import json
from datetime import date
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.incidents.leaks import load
from tests.incidents.test_scoping import retyped, write_csv
from yobikake.accounts.errors import AccountError
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.incidents import services, views
from yobikake.incidents.models import Incident
from yobikake.synth.people import synthetic_people


def interrupted(world, *, file_sha256: str = "") -> Incident:
    """An incident the web opened whose scoping process ended mid-way, as the next
    worker to start leaves it."""
    incident = services.open_incident(
        actor=world.security,
        title="名簿業者",
        aware_on=date(2026, 11, 20),
        file_name="leak.csv",
        file_sha256=file_sha256,
    )
    with services.running(incident):
        pass  # the process ends here without a word: its lease goes with it
    [failed] = services.fail_interrupted_scopings()
    assert failed.pk == incident.pk
    incident.refresh_from_db()
    return incident


def leaked_file(world, tmp_path) -> tuple[Path, int]:
    stored = synthetic_people(12, seed=41, fiscal_year=2022)
    load(world, world.insurer_a, world.staff_a, 2022, stored)
    named = [p for p in stored if p.phone][:5]
    return write_csv(tmp_path, [retyped(p) for p in named]), len(named)


def uploads(settings) -> list[Path]:
    return list((Path(settings.YOBIKAKE_HOME) / "uploads").glob("*"))


def test_a_scoping_whose_process_lives_is_left_running_and_one_whose_process_ended_fails(
    world, tmp_path
):
    incident = services.open_incident(actor=None, title="t", aware_on=date(2026, 11, 20))
    with services.running(incident):
        assert services.fail_interrupted_scopings() == []
        assert Incident.objects.get().state == Incident.State.RUNNING
    [failed] = services.fail_interrupted_scopings()
    assert (failed.state, failed.error_code) == ("failed", "interrupted")
    event = Event.objects.get(tag=AuditTag.INCIDENT_SCOPE)
    assert (event.reason, json.loads(event.details)) == ("interrupted", {"incident_id": failed.pk})
    assert Alert.objects.get(rule="scoping_interrupted").event_seq == event.seq
    assert services.fail_interrupted_scopings() == []  # once
    assert Alert.objects.count() == 1


def test_the_officer_scopes_an_interrupted_incident_again_with_the_same_file(
    world, as_user, tmp_path, settings
):
    path, named = leaked_file(world, tmp_path)
    incident = interrupted(world, file_sha256=services.file_sha256(path))
    client = as_user(world.security)
    page = client.get(f"/incidents/{incident.pk}/")
    assert page.context["error"] == views.ERRORS["interrupted"]
    assert "照合が中断されました" in page.text and 'data-testid="scope-again"' in page.text

    upload = SimpleUploadedFile("leak.csv", path.read_bytes())
    response = client.post(f"/incidents/{incident.pk}/scope/", {"file": upload})
    assert response.status_code == 302
    incident.refresh_from_db()  # the tests' tasks run at once
    assert incident.state == Incident.State.SCOPED, incident.error_message
    assert (incident.error_code, incident.persons) == ("", named)
    [again] = Event.objects.filter(tag=AuditTag.INCIDENT_RESCOPE)
    assert again.actor_user_id == world.security.pk and again.outcome == Event.Outcome.ALLOWED
    assert json.loads(again.details) == {
        "incident_id": incident.pk,
        "failed": "interrupted",
        "source": "web",
    }
    assert uploads(settings) == []
    assert 'data-testid="scope-again"' not in client.get(f"/incidents/{incident.pk}/").text


def test_another_file_is_refused_and_the_refusal_recorded(world, as_user, tmp_path, settings):
    path, _named = leaked_file(world, tmp_path)
    incident = interrupted(world, file_sha256=services.file_sha256(path))
    other = SimpleUploadedFile("other.csv", path.read_bytes() + b"\r\n")
    client = as_user(world.security)
    response = client.post(f"/incidents/{incident.pk}/scope/", {"file": other}, follow=True)
    assert "SHA-256 が異なります" in response.text
    incident.refresh_from_db()
    assert (incident.state, incident.error_code) == ("failed", "interrupted")
    [refused] = Event.objects.filter(tag=AuditTag.INCIDENT_RESCOPE)
    assert (refused.outcome, refused.reason) == (Event.Outcome.DENIED, "other_file")
    assert uploads(settings) == []


def test_a_form_without_a_file_says_so_and_changes_nothing(world, as_user):
    incident = interrupted(world)
    response = as_user(world.security).post(f"/incidents/{incident.pk}/scope/", {})
    assert response.status_code == 200
    assert response.context["scope_again"].errors["file"]
    assert Incident.objects.get().state == Incident.State.FAILED
    assert not Event.objects.filter(tag=AuditTag.INCIDENT_RESCOPE).exists()


def test_only_a_failed_scoping_is_scoped_again(world):
    incident = services.open_incident(actor=world.security, title="t", aware_on=date(2026, 11, 20))
    with pytest.raises(AccountError) as refused:
        services.scope_again(actor=world.security, incident=incident, file_sha256="")
    assert refused.value.code == "not_failed"
    assert Incident.objects.get().state == Incident.State.QUEUED
    denied = Event.objects.get(tag=AuditTag.INCIDENT_RESCOPE)
    assert (denied.outcome, denied.reason) == (Event.Outcome.DENIED, "not_failed")


@pytest.mark.parametrize("role", ["staff_b", "staff_a", "operator", "sysadmin", "fed_admin"])
def test_nobody_but_the_security_officer_scopes_again_and_the_refusal_is_recorded(
    world, as_user, role
):
    incident = interrupted(world)
    user = getattr(world, role)
    upload = SimpleUploadedFile("leak.csv", b"a,b\n1,2\n")
    response = as_user(user).post(f"/incidents/{incident.pk}/scope/", {"file": upload})
    assert response.status_code == 403
    assert Incident.objects.get().state == Incident.State.FAILED
    denial = Event.objects.get(tag=AuditTag.PERMISSION_DENY, actor_user_id=user.pk)
    assert denial.reason == "missing:incident:any:manage"
    with pytest.raises(AccountError):
        services.scope_again(actor=user, incident=incident, file_sha256="")
    assert Incident.objects.get().state == Incident.State.FAILED


def test_a_missing_incident_is_404_and_the_probe_recorded(world, as_user):
    upload = SimpleUploadedFile("leak.csv", b"a,b\n1,2\n")
    response = as_user(world.security).post("/incidents/9999/scope/", {"file": upload})
    assert response.status_code == 404
    assert Event.objects.get(tag=AuditTag.INCIDENT_DENY).reason == "missing"
