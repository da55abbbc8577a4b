import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.test import Client

from tests.audit.helpers import fill_log
from tests.tenancy.test_api import bearer
from yobikake.accounts.permissions import Role
from yobikake.audit import chain
from yobikake.audit.models import Alert, Checkpoint
from yobikake.audit.services import record_denial
from yobikake.audit.tags import AuditTag


def test_security_officer_searches_the_log(world, as_user):
    record_denial(tag=AuditTag.PERMISSION_DENY, actor=world.operator, reason="missing:a:b:c")
    fill_log(3, actor=world.fed_admin)
    client = as_user(world.security)
    page = client.get("/audit/events/", {"user": "operator"}).context["page"]
    assert [e.tag for e in page] == [AuditTag.PERMISSION_DENY]
    page = client.get("/audit/events/", {"tag": "auth:session"}).context["page"]
    assert len(page) == 3
    assert len(client.get("/audit/events/", {"tag": "nothing:"}).context["page"]) == 0


@pytest.mark.parametrize(
    "role", [Role.FEDERATION_ADMIN, Role.SYSADMIN, Role.INSURER_STAFF, Role.OPERATOR]
)
@pytest.mark.parametrize("path", ["/audit/events/", "/audit/alerts/", "/audit/checkpoints/"])
def test_only_the_security_officer_sees_the_audit_screens(world, as_user, role, path):
    assert as_user(world.users()[role]).get(path).status_code == 403


def test_alert_is_acknowledged_and_closed_from_the_queue(world, as_user):
    for _ in range(5):
        record_denial(tag=AuditTag.PERMISSION_DENY, actor=world.operator, reason="x")
    alert = Alert.objects.get()
    client = as_user(world.security)
    assert "拒否の繰り返し" in client.get("/audit/alerts/").text
    client.post(f"/audit/alerts/{alert.pk}/acknowledge/")
    client.post(f"/audit/alerts/{alert.pk}/close/", {"note": "checked with the operator"})
    alert.refresh_from_db()
    assert alert.state == "closed" and alert.note == "checked with the operator"


def test_checkpoint_history_shows_each_checkpoints_state(world, as_user, settings):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 3
    fill_log(6)
    statuses = as_user(world.security).get("/audit/checkpoints/").context["statuses"]
    assert len(statuses) >= 2
    assert all(s.signature_valid and s.matches_log for s in statuses)


def test_an_insurer_pins_checkpoints_with_nothing_but_the_public_key(world, settings):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 3
    fill_log(7)
    headers = bearer(world.staff_a)
    key = Client().get("/api/v1/audit/public-key", **headers).json()
    public = load_pem_public_key(key["pem"].encode())
    checkpoints = Client().get("/api/v1/audit/checkpoints", **headers).json()
    assert len(checkpoints) >= 2
    from datetime import datetime

    for c in checkpoints:
        at = datetime.fromisoformat(c["at"])
        message = chain.checkpoint_message(c["head_seq"], c["head_hash"], at)
        public.verify(bytes.fromhex(c["signature"]), message)  # raises if forged
    later = (
        Client()
        .get("/api/v1/audit/checkpoints", {"after_seq": checkpoints[0]["head_seq"]}, **headers)
        .json()
    )
    assert len(later) == len(checkpoints) - 1
    assert Checkpoint.objects.count() == len(checkpoints)


def test_checkpoints_need_credentials(db):
    assert Client().get("/api/v1/audit/checkpoints").status_code == 401


def test_searching_by_name_finds_what_was_done_to_the_user_too(world, as_user):
    from yobikake.accounts import services as accounts

    newbie = __import__("tests.conftest").conftest.make_user("newbie", world.call_centre, None)
    accounts.request_role(actor=world.sysadmin, user=newbie, role=Role.SUPERVISOR)
    page = as_user(world.security).get("/audit/events/", {"user": "newbie"}).context["page"]
    assert [e.tag for e in page] == [AuditTag.ROLE_REQUEST]
    alert = Alert.objects.get(rule="contractor_role")
    assert alert.subject_username == "newbie"
