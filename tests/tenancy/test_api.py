from datetime import timedelta

from django.test import Client
from django.utils import timezone

from yobikake.accounts.models import ApiToken
from yobikake.accounts.services import create_api_token


def bearer(user, days=7):
    _, token = create_api_token(actor=user, name="test", days=days)
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_federation_admin_lists_every_insurer(world):
    response = Client().get("/api/v1/insurers", **bearer(world.fed_admin))
    assert response.status_code == 200
    by_name = {i["name"]: i for i in response.json()}
    assert set(by_name) == {"テスト市A", "テスト町B"}
    assert by_name["テスト市A"]["fiscal_years"] == [2021, 2022]
    assert by_name["テスト市A"]["prefecture"] == "岐阜県"


def test_insurer_staff_lists_only_their_own(world):
    response = Client().get("/api/v1/insurers", **bearer(world.staff_b))
    assert [i["name"] for i in response.json()] == ["テスト町B"]


def test_other_insurers_staff_gets_404_exactly_like_a_missing_insurer(world):
    headers = bearer(world.staff_b)
    not_yours = Client().get(f"/api/v1/insurers/{world.insurer_a.pk}", **headers)
    missing = Client().get("/api/v1/insurers/999999", **headers)
    assert not_yours.status_code == missing.status_code == 404
    assert not_yours.json() == missing.json()


def test_own_insurer_by_id(world):
    response = Client().get(f"/api/v1/insurers/{world.insurer_b.pk}", **bearer(world.staff_b))
    assert response.json()["name"] == "テスト町B"


def test_no_credentials_is_401(world):
    assert Client().get("/api/v1/insurers").status_code == 401


def test_expired_revoked_and_unknown_tokens_are_401(world):
    headers = bearer(world.fed_admin)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert Client().get("/api/v1/insurers", **headers).status_code == 401
    headers = bearer(world.fed_admin)
    ApiToken.objects.filter(expires_at__gt=timezone.now()).update(revoked_at=timezone.now())
    assert Client().get("/api/v1/insurers", **headers).status_code == 401
    bogus = {"HTTP_AUTHORIZATION": "Bearer ybk_not-a-token"}
    assert Client().get("/api/v1/insurers", **bogus).status_code == 401


def test_token_of_an_expired_contractor_is_401(world):
    headers = bearer(world.supervisor)
    world.supervisor.expires_at = timezone.now() - timedelta(seconds=1)
    world.supervisor.save(update_fields=["expires_at"])
    assert Client().get("/api/v1/insurers", **headers).status_code == 401


def test_verified_session_works_and_unverified_does_not(world, as_user):
    assert as_user(world.staff_a).get("/api/v1/insurers").status_code == 200
    half = Client()
    half.force_login(world.staff_a)
    assert half.get("/api/v1/insurers").status_code == 401


def test_a_token_dies_with_the_password_it_was_made_under(world):
    headers = bearer(world.staff_a)
    world.staff_a.set_password("a brand new passphrase")
    world.staff_a.save(update_fields=["password"])
    assert Client().get("/api/v1/insurers", **headers).status_code == 401
