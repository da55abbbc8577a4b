from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import make_request, make_user
from yobikake.accounts.models import ApiToken, RoleAssignment, User, digest_token
from yobikake.accounts.permissions import Role

# What each role's menu holds (beyond Home), in order.
MENUS = {
    Role.FEDERATION_ADMIN: [
        "保険者一覧",
        "参加状況",
        "キャンペーン",
        "効果測定",
        "権限申請の承認",
        "データ出力の承認",
        "APIトークン",
    ],
    Role.SECURITY_OFFICER: [
        "権限申請の承認",
        "保存期限",
        "アラート",
        "インシデント",
        "監査ログ",
        "チェックポイント",
        "APIトークン",
    ],
    Role.SYSADMIN: ["アカウント管理", "APIトークン"],
    Role.INSURER_STAFF: [
        "自保険者",
        "対象者リスト",
        "キャンペーン",
        "効果測定",
        "受診結果",
        "データ出力",
        "保存期限",
        "APIトークン",
    ],
    Role.SUPERVISOR: ["キャンペーン", "スーパーバイザー画面", "電話帳取込", "APIトークン"],
    Role.OPERATOR: ["架電"],
    Role.RESEARCHER: ["電話番号調査"],
    Role.INQUIRY_DESK: ["問い合わせ窓口"],
}


@pytest.mark.parametrize("role", list(MENUS))
def test_each_role_sees_its_own_menu(world, as_user, role):
    response = as_user(world.users()[role]).get("/")
    labels = [str(item.label) for item in response.context["nav"]]
    assert labels == ["ホーム", *MENUS[role]]
    assert str(role.label) in response.text


def test_home_lists_what_an_operator_may_do(world, as_user):
    text = as_user(world.operator).get("/").text
    assert "架電キューを1人ずつ処理する" in text
    assert "保険者を登録" not in text


def test_sysadmin_requests_a_role_and_an_approver_grants_it(world, as_user):
    newbie = make_user("newbie", world.call_centre, None)
    response = as_user(world.sysadmin).post(
        "/accounts/", {"user": newbie.pk, "role": Role.OPERATOR}, follow=True
    )
    assert "第二者の承認を待っています" in response.text
    assignment = RoleAssignment.objects.get(user=newbie)
    assert assignment.status == "pending"

    approver = as_user(world.security)
    assert "newbie" in approver.get("/accounts/role-requests/").text
    approver.post(f"/accounts/role-requests/{assignment.pk}/decide/", {"decision": "approve"})
    assignment.refresh_from_db()
    assert (assignment.status, assignment.decided_by) == ("active", world.security)


def test_a_refused_request_in_the_ui_says_why(world, as_user):
    response = as_user(world.sysadmin).post(
        "/accounts/", {"user": world.sysadmin.pk, "role": Role.OPERATOR}, follow=True
    )
    assert "ロール「オペレーター」を持てません" in response.text


def test_accounts_page_has_one_new_account_form_and_a_plain_title(world, as_user):
    text = as_user(world.sysadmin).get("/accounts/").text
    assert "<title>アカウント管理 | 呼びかけ</title>" in text
    assert text.count('action="/accounts/new/"') == 1


def test_only_sysadmins_see_accounts_and_only_approvers_see_requests(world, as_user):
    assert as_user(world.operator).get("/accounts/").status_code == 403
    assert as_user(world.fed_admin).get("/accounts/").status_code == 403
    assert as_user(world.sysadmin).get("/accounts/role-requests/").status_code == 403


def test_a_token_is_shown_once_and_stored_only_as_a_hash(world, as_user):
    client = as_user(world.staff_a)
    response = client.post("/accounts/api-tokens/", {"name": "集計", "days": 30})
    token = response.context["new_token"]
    assert token.startswith("ybk_")
    row = ApiToken.objects.get(user=world.staff_a)
    assert row.digest == digest_token(token)
    assert token not in {row.prefix, row.digest, row.name}
    assert token not in client.get("/accounts/api-tokens/").text
    api = Client().get("/api/v1/insurers", headers={"authorization": f"Bearer {token}"})
    assert [i["name"] for i in api.json()] == ["テスト市A"]


def test_a_token_never_outlives_its_contractor_account(world, as_user):
    as_user(world.supervisor).post("/accounts/api-tokens/", {"name": "t", "days": 90})
    row = ApiToken.objects.get(user=world.supervisor)
    assert row.expires_at <= world.supervisor.expires_at


def test_a_user_cannot_revoke_someone_elses_token(world, as_user):
    as_user(world.staff_a).post("/accounts/api-tokens/", {"name": "a", "days": 5})
    token = ApiToken.objects.get(user=world.staff_a)
    response = as_user(world.staff_b).post(f"/accounts/api-tokens/{token.pk}/revoke/")
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    as_user(world.staff_a).post(f"/accounts/api-tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_operators_get_no_api_tokens(world, as_user):
    assert as_user(world.operator).get("/accounts/api-tokens/").status_code == 403


@pytest.mark.parametrize("days", [0, 91])
def test_token_lifetime_is_bounded(world, as_user, days):
    response = as_user(world.fed_admin).post("/accounts/api-tokens/", {"name": "x", "days": days})
    assert response.context["new_token"] is None
    assert not ApiToken.objects.exists()


def test_sysadmin_creates_an_account_and_sees_its_first_password_once(world, as_user):
    client = as_user(world.sysadmin)
    response = client.post(
        "/accounts/new/",
        {"username": "cc-new", "organization": world.call_centre.pk, "expires_on": "2099-01-01"},
    )
    # A contractor account may last a year at most: refused, and nothing written.
    assert response.status_code == 302
    assert not User.objects.filter(username="cc-new").exists()

    expires_on = (timezone.localdate() + timedelta(days=30)).isoformat()
    response = client.post(
        "/accounts/new/",
        {"username": "cc-new", "organization": world.call_centre.pk, "expires_on": expires_on},
    )
    password = response.context["password"]
    assert password not in client.get("/accounts/").text
    user = User.objects.get(username="cc-new")
    assert user.check_password(password)
    assert timezone.localtime(user.expires_at).date().isoformat() == expires_on
    assert not user.role_assignments.exists()


def test_approver_gets_the_handover_password_on_screen(world, as_user):
    assignment = make_request(
        make_user("pending-op", world.call_centre, None), Role.OPERATOR, world.sysadmin
    )
    response = as_user(world.fed_admin).post(
        f"/accounts/role-requests/{assignment.pk}/decide/", {"decision": "approve"}
    )
    shown = response.context["handover_password"]
    assert User.objects.get(username="pending-op").check_password(shown)


def test_only_sysadmins_create_accounts(world, as_user):
    for user in (world.fed_admin, world.security, world.staff_a):
        response = as_user(user).post(
            "/accounts/new/", {"username": "x", "organization": world.federation.pk}
        )
        assert response.status_code == 403
    assert not User.objects.filter(username="x").exists()
