import pytest
from django.test import Client

from tests.conftest import comparable
from yobikake.accounts.permissions import Role


def test_federation_admin_sees_every_insurer(world, as_user):
    response = as_user(world.fed_admin).get("/insurers/")
    assert response.status_code == 200
    assert "テスト市A" in response.text and "テスト町B" in response.text


def test_participation_matrix_marks_contracted_years(world, as_user):
    response = as_user(world.fed_admin).get("/insurers/participation/")
    matrix = response.context["matrix"]
    assert [fy.year for fy in matrix.fiscal_years] == [2021, 2022]
    rows = {row.insurer.name: tuple(c.took_part for c in row.cells) for row in matrix.rows}
    assert rows == {"テスト市A": (True, True), "テスト町B": (False, True)}
    assert matrix.insurers_per_year() == [1, 2]
    assert "令和3年度" in response.text and "FY2021" in response.text
    assert response.text.count("○") == 3 + 1  # three cells plus the legend


def test_insurer_staff_sees_their_own_insurer(world, as_user):
    response = as_user(world.staff_a).get(f"/insurers/{world.insurer_a.pk}/")
    assert response.status_code == 200
    assert "テスト市A" in response.text
    assert "令和4年度（FY2022）" in response.text


def test_other_insurers_staff_gets_404_exactly_like_a_missing_insurer(world, as_user):
    client = as_user(world.staff_b)
    not_yours = client.get(f"/insurers/{world.insurer_a.pk}/")
    missing = client.get("/insurers/999999/")
    assert not_yours.status_code == missing.status_code == 404
    assert comparable(not_yours) == comparable(missing)
    assert "テスト市A" not in not_yours.text


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.SYSADMIN, Role.SUPERVISOR])
def test_call_centre_and_sysadmin_get_404_on_an_insurer_page(world, as_user, role):
    response = as_user(world.users()[role]).get(f"/insurers/{world.insurer_a.pk}/")
    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/insurers/", "/insurers/participation/"])
def test_insurer_staff_may_not_list_all_insurers(world, as_user, path):
    assert as_user(world.staff_a).get(path).status_code == 403


def test_pages_need_a_verified_login(world):
    client = Client()
    client.force_login(world.fed_admin)  # password done, TOTP not
    response = client.get("/insurers/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
