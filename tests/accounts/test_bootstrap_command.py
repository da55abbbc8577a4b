"""`yobikake accounts bootstrap`: a new installation's first accounts — the federation's
admin and security officer, the maintenance contractor's sysadmin — with their
organisations, once, on the record."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from yobikake.accounts.models import Organization, RoleAssignment, User
from yobikake.accounts.permissions import OrganizationKind, Role
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag

FIRST = (
    "--federation",
    "岐阜県国民健康保険団体連合会",
    "--maintenance",
    "保守株式会社",
    "--federation-admin",
    "fed-admin",
    "--security-officer",
    "security",
    "--sysadmin",
    "sysadmin",
)


def bootstrap(*args: str) -> str:
    out = StringIO()
    call_command("accounts", "bootstrap", *args, stdout=out)
    return out.getvalue()


def test_the_first_accounts_get_their_roles_organisations_and_a_password_shown_once(db):
    said = bootstrap(*FIRST)

    roles = {
        a.user.username: (a.role, a.user.organization.name, a.user.organization.kind)
        for a in RoleAssignment.objects.select_related("user__organization")
    }
    assert roles == {
        "fed-admin": (Role.FEDERATION_ADMIN, "岐阜県国民健康保険団体連合会", "federation"),
        "security": (Role.SECURITY_OFFICER, "岐阜県国民健康保険団体連合会", "federation"),
        "sysadmin": (Role.SYSADMIN, "保守株式会社", OrganizationKind.MAINTENANCE),
    }
    assert RoleAssignment.objects.filter(status=RoleAssignment.Status.ACTIVE).count() == 3
    sysadmin = User.objects.get(username="sysadmin")
    assert timezone.now() + timedelta(days=300) < sysadmin.expires_at
    assert sysadmin.expires_at <= timezone.now() + timedelta(days=366)
    assert User.objects.get(username="fed-admin").expires_at is None
    # Each password is printed once, and it is the account's.
    for user in User.objects.all():
        [line] = [line for line in said.splitlines() if line.startswith(user.username + "\t")]
        password = line.split("\t")[-1]
        assert len(password) >= 20 and user.check_password(password)
    [event] = Event.objects.filter(tag=AuditTag.INSTALL_BOOTSTRAP)
    assert event.actor_user_id is None
    assert json.loads(event.details) == {"accounts": 3, "organizations": 2}


def test_a_second_bootstrap_is_refused_on_the_record_and_changes_nothing(db):
    bootstrap(*FIRST)
    again = list(FIRST)
    again[again.index("fed-admin")] = "intruder"
    again[again.index("保守株式会社")] = "別の保守会社"

    with pytest.raises(CommandError, match="既に"):
        bootstrap(*again)

    assert not User.objects.filter(username="intruder").exists()
    assert not Organization.objects.filter(name="別の保守会社").exists()
    denied = Event.objects.get(tag=AuditTag.INSTALL_BOOTSTRAP, outcome=Event.Outcome.DENIED)
    assert denied.actor_user_id is None


def test_a_bad_user_name_or_expiry_is_refused_clearly_and_nothing_is_made(db):
    bad_name = list(FIRST)
    bad_name[bad_name.index("security")] = "security officer"
    with pytest.raises(CommandError, match="英数字"):
        bootstrap(*bad_name)
    with pytest.raises(CommandError, match="1年"):
        bootstrap(*FIRST, "--sysadmin-expires", str(timezone.localdate() + timedelta(days=400)))
    assert not User.objects.exists() and not Organization.objects.exists()


def test_accounts_deleted_in_the_database_do_not_reopen_the_bootstrap(db):
    """The database's administrator deletes every account, to bootstrap admins of their
    own: the audit log still says the installation was bootstrapped."""
    bootstrap(*FIRST)
    RoleAssignment.objects.all().delete()
    User.objects.all().delete()
    again = list(FIRST)
    again[again.index("fed-admin")] = "intruder"

    with pytest.raises(CommandError, match="監査ログ"):
        bootstrap(*again)

    assert not User.objects.exists()
    denied = Event.objects.get(tag=AuditTag.INSTALL_BOOTSTRAP, outcome=Event.Outcome.DENIED)
    assert denied.reason == "bootstrapped_before"
