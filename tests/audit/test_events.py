"""Every service that changes state writes exactly one event, with the right tag, in the
same transaction; refusals are on the record too."""

import json
from datetime import date, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.accounts.test_login import password_step, wrong
from tests.audit.helpers import events_after, head_seq
from tests.conftest import PASSWORD, current_code, make_request, make_user, totp_device
from yobikake.accounts import services as accounts
from yobikake.accounts.permissions import OrganizationKind, Role
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.jp.insurer_numbers import with_check_digit
from yobikake.tenancy import services as tenancy
from yobikake.tenancy.models import Insurer


def only_event(before: int) -> Event:
    # Alerts that an event raises write events of their own (tested in test_alerts).
    events = [e for e in events_after(before) if not e.tag.startswith("alert:")]
    assert len(events) == 1, [e.tag for e in events]
    return events[0]


def new_user(world):
    return make_user("newbie", world.call_centre, None)


def pending(world):
    return make_request(new_user(world), Role.OPERATOR, world.sysadmin)


# (name, how to call the service, tag, what the event must say)
SERVICES = [
    (
        "create_organization",
        lambda w: accounts.create_organization(
            actor=w.sysadmin, name="別会社", kind=OrganizationKind.CALL_CENTRE
        ),
        AuditTag.ORGANIZATION_CREATE,
        lambda w, e: json.loads(e.details)["kind"] == "call_centre",
    ),
    (
        "create_user",
        lambda w: accounts.create_user(
            actor=w.sysadmin,
            username="u1",
            organization=w.federation,
            password="a long enough passphrase",
        ),
        AuditTag.USER_CREATE,
        lambda w, e: e.subject_user_id is not None and e.actor_user_id == w.sysadmin.pk,
    ),
    (
        "request_role",
        lambda w: accounts.request_role(actor=w.sysadmin, user=new_user(w), role=Role.OPERATOR),
        AuditTag.ROLE_REQUEST,
        lambda w, e: json.loads(e.details)["status"] == "pending",
    ),
    (
        "approve_role",
        lambda w: accounts.approve_role(actor=w.security, assignment=pending(w)),
        AuditTag.ROLE_APPROVE,
        lambda w, e: json.loads(e.details)["credentials_reset"] is True,
    ),
    (
        "refuse_role",
        lambda w: accounts.refuse_role(actor=w.fed_admin, assignment=pending(w)),
        AuditTag.ROLE_REFUSE,
        lambda w, e: json.loads(e.details)["role"] == "operator",
    ),
    (
        "revoke_role",
        lambda w: accounts.revoke_role(
            actor=w.sysadmin, assignment=w.supervisor.role_assignments.get()
        ),
        AuditTag.ROLE_REVOKE,
        lambda w, e: e.subject_user_id == w.supervisor.pk,
    ),
    (
        "create_api_token",
        lambda w: accounts.create_api_token(actor=w.staff_a, name="t", days=3),
        AuditTag.API_TOKEN_CREATE,
        lambda w, e: json.loads(e.details)["days"] == 3,
    ),
    (
        "register_insurer",
        lambda w: tenancy.register_insurer(
            actor=w.fed_admin,
            number=with_check_digit("21977"),
            name="新町",
            kind=Insurer.Kind.MUNICIPALITY,
        ),
        AuditTag.INSURER_REGISTER,
        lambda w, e: e.insurer_id == Insurer.objects.get(name="新町").pk,
    ),
    (
        "create_contract",
        lambda w: tenancy.create_contract(
            actor=w.fed_admin,
            insurer=w.insurer_b,
            fiscal_year=2024,
            calling_starts=date(2024, 9, 1),
            calling_ends=date(2024, 12, 1),
            retention_until=date(2026, 3, 31),
        ),
        AuditTag.CONTRACT_CREATE,
        lambda w, e: e.insurer_id == w.insurer_b.pk,
    ),
]


@pytest.mark.parametrize(("name", "call", "tag", "check"), SERVICES, ids=[s[0] for s in SERVICES])
def test_each_service_writes_exactly_one_event(world, name, call, tag, check):
    before = head_seq()
    call(world)
    event = only_event(before)
    assert event.tag == tag
    assert event.outcome == "allowed"
    assert check(world, event)


def test_revoking_an_api_token_writes_one_event(world):
    token, _ = accounts.create_api_token(actor=world.staff_a, name="t", days=3)
    before = head_seq()
    accounts.revoke_api_token(actor=world.staff_a, token=token)
    assert only_event(before).tag == AuditTag.API_TOKEN_REVOKE


def test_a_refused_service_writes_one_denied_event_and_nothing_else(world):
    before = head_seq()
    with pytest.raises(accounts.AccountError):
        accounts.request_role(actor=world.sysadmin, user=world.sysadmin, role=Role.OPERATOR)
    event = only_event(before)
    assert (event.tag, event.outcome) == (AuditTag.ROLE_REQUEST, "denied")
    assert event.reason == "role_outside_organization"
    assert event.actor_user_id == world.sysadmin.pk


def test_a_missing_permission_is_recorded_by_its_name(world):
    before = head_seq()
    with pytest.raises(accounts.NotPermitted):
        tenancy.register_insurer(
            actor=world.staff_a, number=with_check_digit("21978"), name="x", kind="municipality"
        )
    assert only_event(before).reason == "missing:insurer:any:manage"


def test_the_event_and_the_change_commit_together(world, monkeypatch):
    import yobikake.accounts.services as module

    def broken_append(**kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(module, "append_event", broken_append)
    with pytest.raises(RuntimeError):
        accounts.create_user(
            actor=world.sysadmin,
            username="ghost",
            organization=world.federation,
            password="a long enough passphrase",
        )
    assert not module.User.objects.filter(username="ghost").exists()


def test_login_writes_enrolment_and_success(world):
    client = Client(REMOTE_ADDR="198.51.100.7")
    password_step(client, "researcher")
    before = head_seq()
    secret = client.get("/login/mfa/").context["secret"]
    import base64

    from django_otp.oath import TOTP

    client.post("/login/mfa/", {"token": f"{TOTP(base64.b32decode(secret)).token():06d}"})
    tags = [(e.tag, e.actor_username, e.client_ip) for e in events_after(before)]
    assert tags == [
        (AuditTag.MFA_ENROLL, "researcher", "198.51.100.7"),
        (AuditTag.LOGIN_SUCCESS, "researcher", "198.51.100.7"),
    ]


def test_failed_steps_and_the_lockout_are_recorded(world, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = totp_device(world.staff_a)
    client = Client()
    before = head_seq()
    password_step(client, "staff-a", password="wrong password")
    password_step(client, "staff-a")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/login/mfa/", {"token": wrong(current_code(device))})
    events = [(e.tag, e.reason, e.subject_user_id) for e in events_after(before)]
    who = world.staff_a.pk
    assert events[0] == (AuditTag.LOGIN_FAILURE, "bad_password", who)
    assert events[1:4] == [(AuditTag.LOGIN_FAILURE, "bad_totp", who)] * 3
    assert events[4] == (AuditTag.LOGIN_LOCKOUT, "locked", who)


def test_an_unknown_name_is_recorded_as_no_one(db):
    before = head_seq()
    password_step(Client(), "nobody-here")
    event = only_event(before)
    assert (event.tag, event.subject_user_id, event.actor_user_id) == (
        AuditTag.LOGIN_FAILURE,
        None,
        None,
    )
    assert "nobody-here" not in str(event.__dict__)


def test_logout_and_expiry_are_recorded(world, as_user):
    client = as_user(world.fed_admin)
    before = head_seq()
    client.post("/logout/")
    assert only_event(before).tag == AuditTag.LOGOUT

    client = as_user(world.supervisor)
    world.supervisor.expires_at = timezone.now() - timedelta(seconds=1)
    world.supervisor.save(update_fields=["expires_at"])
    before = head_seq()
    client.get("/")
    event = only_event(before)
    assert (event.tag, event.subject_user_id) == (AuditTag.ACCOUNT_EXPIRED, world.supervisor.pk)


def test_permission_denials_and_insurer_probing_are_recorded(world, as_user):
    client = as_user(world.staff_b)
    before = head_seq()
    client.get("/insurers/")
    client.get(f"/insurers/{world.insurer_a.pk}/")
    client.get("/insurers/999999/")
    events = [(e.tag, e.reason, e.insurer_id) for e in events_after(before)]
    assert events == [
        (AuditTag.PERMISSION_DENY, "missing:insurer:any:view", None),
        (AuditTag.INSURER_DENY, "not_yours", world.insurer_a.pk),
        (AuditTag.INSURER_DENY, "missing", None),
    ]


def test_details_take_ids_and_codes_only(world):
    from yobikake.audit.services import AuditError, append_event

    for bad in ({"name": "山田太郎"}, {"address": "岐阜市下奈良2丁目2番1号"}, {"x": "a b"}):
        with pytest.raises(AuditError):
            append_event(tag=AuditTag.LOGOUT, actor=None, details=bad)


def test_the_password_never_reaches_the_log(world):
    before = head_seq()
    password_step(Client(), "staff-a", password=PASSWORD + "typo")
    assert PASSWORD not in str([e.__dict__ for e in events_after(before)])


@pytest.mark.parametrize("value", __import__("tests.pii").pii.SYNTHETIC_PERSONAL_DATA)
def test_personal_data_typed_anywhere_never_reaches_the_log(world, as_user, value):
    # Typed as a user name, as a password, as a search, as a token name: the autouse
    # scan then checks no event holds it.
    password_step(Client(), value)
    password_step(Client(), "staff-a", password=value)
    as_user(world.security).get("/audit/events/", {"user": value, "tag": value})
    as_user(world.staff_a).post("/accounts/api-tokens/", {"name": value, "days": 1})
    from yobikake.audit.services import AuditError, append_event

    with pytest.raises(AuditError):
        append_event(tag=AuditTag.LOGOUT, actor=None, details={"note": value + " "})
    assert Event.objects.filter(tag=AuditTag.API_TOKEN_CREATE).exists()
