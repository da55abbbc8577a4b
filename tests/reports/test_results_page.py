"""The insurer's upload page for checkup results: the same service as `yobikake results
import`, its summary and the documents it could not read on the page; another insurer's
staff cannot mark insurer A's people, and each refusal is on the record."""

import json

from django.core.files.uploadedfile import SimpleUploadedFile

from tests.calling.conftest import running_campaign
from tests.calling.test_results_cda import IN_YEAR, attended_days, kana_birth_document
from tests.jp.test_checkup_cda import UNIT, real_archive
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag


def upload(client, path):
    return client.post(
        "/results/upload/", {"file": SimpleUploadedFile(path.name, path.read_bytes())}, follow=True
    )


def insurer_a_archive(world, tmp_path):
    campaign, _, people = running_campaign(world, count=12, seed=5)
    dated = [p for p in people if p.birth_date is not None][:2]
    documents = [kana_birth_document(p, IN_YEAR, world.insurer_a) for p in dated]
    return campaign, real_archive(tmp_path, [*documents, b"<ClinicalDocument"])


def test_the_insurers_staff_sees_what_matched_and_which_documents_could_not_be_read(
    calling_day, world, tmp_path, as_user
):
    campaign, path = insurer_a_archive(world, tmp_path)
    response = upload(as_user(world.staff_a), path)
    assert response.status_code == 200
    result = response.context["result"]
    assert (result.rows, result.matched, result.invalid) == (3, 2, 1)
    assert (
        f"{UNIT}DATA/h9900000001202301200000002.xml: XMLとして正しくありません（1行18列）。"
        in response.text
    )
    assert attended_days(campaign) == [IN_YEAR, IN_YEAR]
    event = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT)
    assert event.outcome == Event.Outcome.ALLOWED and event.actor_user_id == world.staff_a.pk
    assert event.insurer_id == world.insurer_a.pk and json.loads(event.details)["invalid"] == 1


def test_insurer_bs_staff_cannot_mark_insurer_as_people(calling_day, world, tmp_path, as_user):
    campaign, path = insurer_a_archive(world, tmp_path)
    response = upload(as_user(world.staff_b), path)
    assert "result" not in response.context
    assert f"（保険者番号 {world.insurer_a.number.zfill(8)}）" in response.text
    assert attended_days(campaign) == []
    denial = Event.objects.get(tag=AuditTag.CHECKUP_RESULTS_IMPORT)
    assert denial.outcome == Event.Outcome.DENIED and denial.reason == "other_insurer"
    assert denial.actor_user_id == world.staff_b.pk


def test_a_user_without_an_insurer_cannot_open_the_page(calling_day, world, tmp_path, as_user):
    campaign, path = insurer_a_archive(world, tmp_path)
    assert upload(as_user(world.operator), path).status_code == 403
    assert attended_days(campaign) == []
    denial = Event.objects.get(tag=AuditTag.PERMISSION_DENY)
    assert denial.actor_user_id == world.operator.pk
