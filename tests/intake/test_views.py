"""The upload page, the import pages and POST /api/v1/lists."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.intake.files import csv_bytes, people, row_of
from tests.tenancy.test_api import bearer
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import ListImport, Target


def upload(client, data: bytes, name="list.csv", policy="reject", year=2022, existing=""):
    fields = {"fiscal_year": year, "policy": policy, "existing": existing}
    return client.post("/lists/upload/", {**fields, "file": SimpleUploadedFile(name, data)})


def test_staff_upload_a_cp932_list_and_see_it_accepted(world, as_user, settings):
    client = as_user(world.staff_a)
    response = upload(client, csv_bytes([row_of(p) for p in people(10)], encoding="cp932"))
    list_import = ListImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/lists/imports/{list_import.pk}/"
    assert list_import.state == ListImport.State.ACCEPTED
    assert list_import.created_by == world.staff_a
    assert Target.objects.filter(target_list=list_import.target_list).count() == 10
    page = client.get(response["Location"])
    assert "受理" in page.text and "送付 10 行、受理 10 行、除外 0 行。" in page.text
    assert "list.csv" in client.get("/lists/").text
    # The file waited sealed and is gone now.
    assert not list((Path(settings.YOBIKAKE_HOME) / "uploads").glob("*"))


def test_findings_are_shown_and_downloadable_without_values(world, as_user):
    client = as_user(world.staff_a)
    rows = [row_of(p) for p in people(4)]
    rows[1][3] = "X"
    upload(client, csv_bytes(rows), policy="exclude")
    list_import = ListImport.objects.get()
    page = client.get(f"/lists/imports/{list_import.pk}/")
    assert "性別は 1、2、男、女 のいずれかです。" in page.text and "D3" in page.text
    report = client.get(f"/lists/imports/{list_import.pk}/report.csv")
    assert report.status_code == 200 and "sex" in report.content.decode("utf-8-sig")
    assert rows[1][1] not in report.content.decode("utf-8-sig")


def test_other_insurers_staff_get_404_for_an_import_like_a_missing_one(world, as_user):
    upload(as_user(world.staff_a), csv_bytes([row_of(p) for p in people(3)]))
    list_import = ListImport.objects.get()
    other = as_user(world.staff_b)
    for suffix in ("", "status/", "report.csv"):
        assert other.get(f"/lists/imports/{list_import.pk}/{suffix}").status_code == 404
        assert other.get(f"/lists/imports/99999/{suffix}").status_code == 404
    assert "list.csv" not in other.get("/lists/").text
    denial = Event.objects.filter(tag=AuditTag.LIST_DENY, reason="not_yours").first()
    assert denial.actor_user_id == world.staff_b.pk
    assert f'"import_id":{list_import.pk}' in denial.details


def test_a_file_over_the_upload_limit_is_refused_before_anything_is_stored(
    world, as_user, settings
):
    settings.YOBIKAKE_UPLOAD_MAX_MB = 0
    response = upload(as_user(world.staff_a), csv_bytes([row_of(p) for p in people(2)]))
    assert response.status_code == 200 and "MB を超えています" in response.text
    assert not ListImport.objects.exists()


@pytest.mark.parametrize("role", ["operator", "sysadmin", "security"])
def test_only_insurer_staff_send_lists(world, as_user, role):
    assert as_user(getattr(world, role)).get("/lists/upload/").status_code == 403


def test_the_api_takes_a_list_and_reports_on_it(world):
    data = csv_bytes([row_of(p) for p in people(5)])
    response = Client().post(
        "/api/v1/lists",
        {"fiscal_year": 2022, "policy": "reject", "file": SimpleUploadedFile("a.csv", data)},
        **bearer(world.staff_a),
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["state"], body["rows_accepted"]) == ("accepted", 5)
    own = Client().get(f"/api/v1/imports/{body['id']}", **bearer(world.staff_a))
    assert own.status_code == 200 and own.json()["list_id"] == body["list_id"]
    other = Client().get(f"/api/v1/imports/{body['id']}", **bearer(world.staff_b))
    missing = Client().get("/api/v1/imports/99999", **bearer(world.staff_b))
    assert other.status_code == missing.status_code == 404


def test_the_api_refuses_a_year_without_a_contract_and_oversized_files(world, settings):
    data = csv_bytes([row_of(p) for p in people(2)])
    no_contract = Client().post(
        "/api/v1/lists",
        {"fiscal_year": 2015, "file": SimpleUploadedFile("a.csv", data)},
        **bearer(world.staff_a),
    )
    assert no_contract.status_code == 422
    settings.YOBIKAKE_UPLOAD_MAX_MB = 0
    too_big = Client().post(
        "/api/v1/lists",
        {"fiscal_year": 2022, "file": SimpleUploadedFile("a.csv", data)},
        **bearer(world.staff_a),
    )
    assert too_big.status_code == 413
    assert not ListImport.objects.exists()


def test_an_upload_that_cannot_be_opened_fails_its_import(world):
    from yobikake.intake import services
    from yobikake.intake.tasks import import_uploaded_list
    from yobikake.intake.uploads import discard_upload, seal_upload

    upload_id, sha256 = seal_upload([csv_bytes([row_of(p) for p in people(2)])])
    list_import = services.start_import(
        actor=world.staff_a,
        insurer=world.insurer_a,
        fiscal_year=2022,
        file_name="a.csv",
        file_sha256=sha256,
        policy="reject",
    )
    discard_upload(upload_id)  # lost before its task ran
    import_uploaded_list.enqueue(list_import.pk, upload_id)
    list_import.refresh_from_db()
    assert (list_import.state, list_import.error_code) == ("failed", "upload_unreadable")


def test_a_refused_upload_form_leaves_no_sealed_copy(world, as_user, settings):
    client = as_user(world.staff_a)
    data = csv_bytes([row_of(p) for p in people(3)], encoding="cp932")
    response = upload(client, data, year=1999)  # no contract that year: the form refuses
    assert response.status_code == 200 and not ListImport.objects.exists()
    assert not list((Path(settings.YOBIKAKE_HOME) / "uploads").glob("*"))


def test_a_second_list_of_the_year_needs_a_choice_on_the_upload_page(world, as_user, settings):
    client = as_user(world.staff_a)
    persons = people(6)
    upload(client, csv_bytes([row_of(p) for p in persons[:3]]))
    form = client.get("/lists/upload/")
    assert "既に送付した場合" in form.text and "追加リストとして加える" in form.text
    second = csv_bytes([row_of(p) for p in persons[3:]])
    refused = upload(client, second, name="b.csv")
    assert refused.status_code == 200
    assert "令和4年度（FY2022）のリストは既に送付されています" in refused.text
    assert ListImport.objects.count() == 1
    assert not list((Path(settings.YOBIKAKE_HOME) / "uploads").glob("*"))
    response = upload(client, second, name="b.csv", existing="replace")
    replacement = ListImport.objects.get(file_name="b.csv")
    assert response["Location"] == f"/lists/imports/{replacement.pk}/"
    assert (replacement.state, replacement.existing) == ("accepted", "replace")
    page = client.get(response["Location"])
    assert "置き換える" in page.text
    first = ListImport.objects.get(file_name="list.csv").target_list
    assert f"リスト #{first.pk}" in page.text and "消去を申請しました" in page.text
    # Insurer B's staff see none of it, and their own first list of the year needs no choice.
    other = as_user(world.staff_b)
    assert other.get(f"/lists/imports/{replacement.pk}/").status_code == 404
    assert upload(other, csv_bytes([row_of(p) for p in people(2, seed=5)])).status_code == 302
    own = ListImport.objects.get(insurer=world.insurer_b)
    assert (own.state, own.existing) == ("accepted", "")
    first.refresh_from_db()
    assert first.superseded_by == replacement.target_list


def test_the_api_refuses_a_second_list_of_the_year_without_a_choice(world):
    persons = people(6)

    def send(rows, **fields):
        data = csv_bytes([row_of(p) for p in rows])
        return Client().post(
            "/api/v1/lists",
            {"fiscal_year": 2022, "file": SimpleUploadedFile("a.csv", data), **fields},
            **bearer(world.staff_a),
        )

    assert send(persons[:3]).status_code == 202
    refused = send(persons[3:])
    assert refused.status_code == 409
    assert "既に送付されています" in refused.json()["detail"]
    assert send(persons[3:], existing="keep").status_code == 422
    added = send(persons[3:], existing="add")
    assert added.status_code == 202, added.text
    assert (added.json()["state"], added.json()["existing"]) == ("accepted", "add")
    # Insurer B's staff are not told of insurer A's list, and cannot read its import.
    other = Client().get(f"/api/v1/imports/{added.json()['id']}", **bearer(world.staff_b))
    assert other.status_code == 404
    data = csv_bytes([row_of(p) for p in people(2, seed=5)])
    own = Client().post(
        "/api/v1/lists",
        {"fiscal_year": 2022, "file": SimpleUploadedFile("b.csv", data)},
        **bearer(world.staff_b),
    )
    assert own.status_code == 202 and own.json()["existing"] == ""
