"""The notification list from request to download: asked for on the incident page,
approved by a second person, downloaded once by the insurer's own staff — encrypted to
the insurer's key and holding exactly its affected persons — and a 404 for anyone else."""

import json
from datetime import timedelta

import pyrage
import pytest
import time_machine
from django.utils import timezone, translation

from tests.custody_registry import approve_confirmed, confirm_filed_approvals
from tests.exports.conftest import decrypt_csv
from tests.incidents.leaks import scoped_leak
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.exports.models import Approval
from yobikake.incidents import notification
from yobikake.tenancy.fiscal import FiscalYear


def japanese_headers():
    with translation.override("ja"):
        return [str(h) for h in notification.HEADERS]


def download(client, approval):
    return client.post(f"/exports/{approval.pk}/download/")


def test_the_list_is_released_only_after_a_second_persons_approval(world, as_user, requested):
    leak, approval = requested.leak, requested.approval
    staff = as_user(world.staff_a)
    # Asked for, not yet approved: nothing to download.
    refused = download(staff, approval)
    assert refused.status_code == 302
    assert Event.objects.get(tag=AuditTag.REVEAL_EXPORT).reason == "not_approved"
    # The second person approves on the approvals page.
    approver = as_user(world.fed_admin)
    page = approver.get("/exports/approvals/")
    assert f'data-testid="approval-{approval.pk}"' in page.text
    assert leak.incident.title in page.text and approval.recipient.short in page.text
    decided = approver.post(
        f"/exports/approvals/{approval.pk}/decide/", {"decision": "approve"}, follow=True
    )
    approval.refresh_from_db()
    assert approval.state == Approval.State.APPROVED
    # Filed with custody: the approver is shown where to confirm it with their passkey.
    assert "/approve/" in decided.text
    confirm_filed_approvals()
    # The insurer's page offers it; the download is encrypted and opens with A's key.
    assert 'data-testid="download"' in staff.get("/exports/").text
    response = download(staff, approval)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert "notification-list-incident" in response["Content-Disposition"]
    assert response.content.startswith(b"age-encryption.org/v1")
    assert leak.leaked_a[0].name_kanji.encode() not in response.content


def test_the_file_opens_only_with_the_insurers_key_and_holds_exactly_its_persons(
    world, as_user, requested, identities
):
    leak, approval = requested.leak, requested.approval
    approve_confirmed(actor=world.fed_admin, approval=approval)
    data = download(as_user(world.staff_a), approval).content
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(data, [identities[world.insurer_b.pk]])
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(data, [pyrage.x25519.Identity.generate()])
    header, *rows = decrypt_csv(data, identities[world.insurer_a.pk])
    assert header == japanese_headers()
    assert header[:4] == ["氏名", "氏名（カナ）", "郵便番号", "住所"]
    # One line per person: those on both years' lists once, with both years.
    assert sorted(r[0] for r in rows) == sorted(p.name_kanji for p in leak.leaked_a)
    by_name = {r[0]: r for r in rows}
    for person in leak.leaked_a:
        _, kana, postal, address, years, items = by_name[person.name_kanji]
        assert (kana, postal, address) == (person.name_kana, person.postal_code, person.address)
        both = person in leak.both_years
        expected = [FiscalYear(2021), FiscalYear(2022)] if both else [FiscalYear(2022)]
        assert years == "、".join(str(fy) for fy in expected)
        assert items == "氏名、氏名（カナ）、生年月日、電話番号、住所"
    assert not {p.name_kanji for p in leak.leaked_b} & set(by_name)
    # One event names the approval and the count, never a value.
    [event] = Event.objects.filter(tag=AuditTag.REVEAL_EXPORT, outcome=Event.Outcome.ALLOWED)
    assert event.actor_user_id == world.staff_a.pk and event.insurer_id == world.insurer_a.pk
    assert json.loads(event.details) == {
        "approval_id": approval.pk,
        "count": len(leak.leaked_a) + len(leak.both_years),  # stored records opened
        "kind": "notification_list",
        "missing": 0,
    }


def test_canaries_are_never_on_the_list(world, as_user, identities, tmp_path, canaries, settings):
    settings.YOBIKAKE_EXPORT_WATERMARK_ROWS = 0  # the file then holds exactly the persons
    leak = scoped_leak(world, tmp_path)
    assert leak.canary_row is not None
    approval = notification.request_notification_list(
        actor=world.security, incident=leak.incident, insurer=world.insurer_b
    )
    approve_confirmed(actor=world.fed_admin, approval=approval)
    _, *rows = decrypt_csv(
        download(as_user(world.staff_b), approval).content, identities[world.insurer_b.pk]
    )
    assert sorted(r[0] for r in rows) == sorted(p.name_kanji for p in leak.leaked_b)


def test_a_file_is_downloaded_once(world, as_user, requested):
    approve_confirmed(actor=world.fed_admin, approval=requested.approval)
    staff = as_user(world.staff_a)
    assert download(staff, requested.approval).status_code == 200
    again = download(staff, requested.approval)
    assert again.status_code == 302
    assert Event.objects.get(tag=AuditTag.REVEAL_EXPORT, outcome="denied").reason == "used"
    requested.approval.refresh_from_db()
    assert requested.approval.state == Approval.State.USED
    assert requested.approval.used_by == world.staff_a
    assert 'data-testid="download"' not in staff.get("/exports/").text


def test_an_approval_not_used_in_time_releases_nothing(world, as_user, requested):
    approve_confirmed(actor=world.fed_admin, approval=requested.approval)
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        response = download(as_user(world.staff_a), requested.approval)
    assert response.status_code == 302
    assert Event.objects.get(tag=AuditTag.REVEAL_EXPORT).reason == "expired"


def test_another_insurers_staff_get_404_and_the_refusal_is_recorded(world, as_user, requested):
    approve_confirmed(actor=world.fed_admin, approval=requested.approval)
    other = as_user(world.staff_b)
    assert download(other, requested.approval).status_code == 404
    assert other.post("/exports/99999/download/").status_code == 404
    assert other.get("/exports/").context["approvals"] == []
    denials = list(Event.objects.filter(tag=AuditTag.EXPORT_DENY).order_by("seq"))
    assert [d.reason for d in denials] == ["not_yours", "missing"]
    assert denials[0].actor_user_id == world.staff_b.pk
    assert json.loads(denials[0].details) == {"approval_id": requested.approval.pk}
    assert not Event.objects.filter(tag=AuditTag.REVEAL_EXPORT).exists()


@pytest.mark.parametrize(
    ("role", "url"),
    [
        ("operator", "/exports/"),
        ("security", "/exports/"),
        ("sysadmin", "/exports/"),
        ("fed_admin", "/exports/"),
        ("security", "/exports/approvals/"),
        ("staff_a", "/exports/approvals/"),
        ("sysadmin", "/exports/approvals/"),
    ],
)
def test_the_exports_pages_are_for_their_roles_only(world, as_user, role, url):
    assert as_user(getattr(world, role)).get(url).status_code == 403
    assert Event.objects.get(tag=AuditTag.PERMISSION_DENY).actor_user_id == getattr(world, role).pk


def test_only_an_approver_decides_through_the_page(world, as_user, requested):
    response = as_user(world.staff_a).post(
        f"/exports/approvals/{requested.approval.pk}/decide/", {"decision": "approve"}
    )
    assert response.status_code == 403
    requested.approval.refresh_from_db()
    assert requested.approval.state == Approval.State.REQUESTED


def test_staff_register_their_key_on_the_page(world, as_user):
    staff = as_user(world.staff_a)
    assert 'data-testid="key-form"' in staff.get("/exports/").text
    bad = staff.post("/exports/key/", {"public_key": "age1notakey"})
    assert bad.status_code == 200 and bad.context["form"].errors["public_key"]
    public = str(pyrage.x25519.Identity.generate().to_public())
    assert staff.post("/exports/key/", {"public_key": public}).status_code == 302
    assert public in staff.get("/exports/").text


def test_the_officer_requests_each_insurers_list_on_the_incident_page(
    world, as_user, identities, tmp_path
):
    leak = scoped_leak(world, tmp_path)
    officer = as_user(world.security)
    url = f"/incidents/{leak.incident.pk}/"
    assert officer.get(url).text.count('data-testid="request-list"') == 2
    officer.post(f"{url}notification/{world.insurer_a.pk}/")
    approval = Approval.objects.get()
    assert approval.insurer == world.insurer_a and approval.requested_by == world.security
    page = officer.get(url)
    assert page.text.count('data-testid="request-list"') == 1
    assert 'data-state="requested"' in page.text
    assert officer.post(f"{url}notification/99999/").status_code == 404


def test_a_request_past_its_time_leaves_the_approvers_waiting_list(world, as_user, requested):
    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        page = as_user(world.fed_admin).get("/exports/approvals/")
        [(approval, _)] = page.context["decided"]
        assert approval.current_state == Approval.State.EXPIRED
    assert page.context["waiting"] == []
    assert approval.pk == requested.approval.pk


def test_the_list_carries_its_own_watermark_which_scoping_traces_back_to_it(
    world, as_user, identities, tmp_path, settings
):
    """Three fictitious people, shaped like the list's rows and sorted in among them; a
    leaked copy of the file names this export."""
    from yobikake.incidents import services as incidents
    from yobikake.incidents.models import WatermarkMatch

    settings.YOBIKAKE_EXPORT_WATERMARK_ROWS = 3
    leak = scoped_leak(world, tmp_path)
    approval = notification.request_notification_list(
        actor=world.security, incident=leak.incident, insurer=world.insurer_a
    )
    approve_confirmed(actor=world.fed_admin, approval=approval)
    header, *rows = decrypt_csv(
        download(as_user(world.staff_a), approval).content, identities[world.insurer_a.pk]
    )
    real = {p.name_kanji for p in leak.leaked_a}
    assert len(rows) == len(real) + 3 and real <= {r[0] for r in rows}
    assert rows == sorted(rows, key=lambda r: (r[1], r[3], r[0]))  # nothing out of place

    copy = tmp_path / "copy.csv"
    copy.write_text("\n".join(",".join(r[:4]) for r in [header, *rows]), encoding="utf-8")
    incident = incidents.open_incident(actor=None, title="copy", aware_on=leak.incident.aware_on)
    incident = incidents.run_scoping(incident, copy)
    marks = WatermarkMatch.objects.filter(incident=incident)
    assert marks.count() == 3 and {m.approval_id for m in marks} == {approval.pk}
