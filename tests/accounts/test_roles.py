from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import PASSWORD, make_request, make_user
from yobikake.accounts import services
from yobikake.accounts.models import RoleAssignment, User
from yobikake.accounts.permissions import (
    PERSONAL_DATA_PERMISSIONS,
    ROLE_PERMISSIONS,
    Permission,
    Role,
)
from yobikake.accounts.selectors import has_permission, user_permissions


def new_call_centre_user(world, username="newbie") -> User:
    return make_user(username, world.call_centre, None)


def test_personal_data_role_waits_for_a_second_person_and_grants_nothing_meanwhile(world):
    user = new_call_centre_user(world)
    assignment = services.request_role(actor=world.sysadmin, user=user, role=Role.OPERATOR)
    assert assignment.status == RoleAssignment.Status.PENDING
    assert not has_permission(User.objects.get(pk=user.pk), Permission.TARGET_REVEAL_CALL)

    services.approve_role(actor=world.fed_admin, assignment=assignment)
    assignment.refresh_from_db()
    assert assignment.status == RoleAssignment.Status.ACTIVE
    assert assignment.decided_by == world.fed_admin
    assert has_permission(User.objects.get(pk=user.pk), Permission.TARGET_REVEAL_CALL)


def test_a_role_without_personal_data_is_active_at_once(world):
    user = new_call_centre_user(world)
    assignment = services.request_role(actor=world.sysadmin, user=user, role=Role.SUPERVISOR)
    assert assignment.status == RoleAssignment.Status.ACTIVE


def test_roles_that_approve_others_also_need_a_second_person(world):
    user = make_user("second-officer", world.federation, None)
    assignment = services.request_role(actor=world.sysadmin, user=user, role=Role.SECURITY_OFFICER)
    assert assignment.status == RoleAssignment.Status.PENDING


def test_the_requester_cannot_approve_their_own_request(world):
    # Give the sysadmin's request to someone who can also approve: the security officer
    # asks nothing, so make a federation admin who can both request and approve.
    user = new_call_centre_user(world)
    assignment = services.request_role(actor=world.sysadmin, user=user, role=Role.OPERATOR)
    with pytest.raises(services.NotPermitted):
        services.approve_role(actor=world.sysadmin, assignment=assignment)
    assert RoleAssignment.objects.get(pk=assignment.pk).status == "pending"


def test_nobody_approves_a_role_for_themselves(world):
    assignment = services.request_role(
        actor=world.sysadmin, user=world.security, role=Role.FEDERATION_ADMIN
    )
    with pytest.raises(services.AccountError, match="第二者"):
        services.approve_role(actor=world.security, assignment=assignment)
    services.approve_role(actor=world.fed_admin, assignment=assignment)
    assert Role.FEDERATION_ADMIN.value in world.security.role_assignments.filter(
        status="active"
    ).values_list("role", flat=True)


def test_the_database_refuses_an_approval_by_the_requester(world):
    user = new_call_centre_user(world)
    with pytest.raises(IntegrityError), transaction.atomic():
        RoleAssignment.objects.create(
            user=user,
            role=Role.OPERATOR,
            status="active",
            requested_by=world.fed_admin,
            decided_by=world.fed_admin,
        )


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.RESEARCHER, Role.INSURER_STAFF])
def test_a_sysadmin_can_never_be_given_a_personal_data_role(world, role):
    with pytest.raises(services.AccountError):
        services.request_role(actor=world.sysadmin, user=world.sysadmin, role=role)
    assert not RoleAssignment.objects.filter(user=world.sysadmin, role=role).exists()


def test_a_superuser_can_never_be_given_a_personal_data_role(world):
    user = make_user("root-in-cc", world.call_centre, None, is_superuser=True)
    with pytest.raises(services.AccountError, match="スーパーユーザー"):
        services.request_role(actor=world.sysadmin, user=user, role=Role.OPERATOR)
    assert not RoleAssignment.objects.filter(user=user).exists()


def test_superuser_flag_grants_nothing_beyond_sysadmin(world):
    world.fed_admin.is_superuser = True
    world.fed_admin.save(update_fields=["is_superuser"])
    user = User.objects.get(pk=world.fed_admin.pk)
    assert user_permissions(user) <= ROLE_PERMISSIONS[Role.SYSADMIN]
    assert not has_permission(user, Permission.INSURER_ANY_VIEW)
    assert not has_permission(user, Permission.ACCOUNT_USER_MANAGE), "not more than its roles"
    assert not user.has_perm("accounts.view_user")

    bare = make_user("bare-root", world.maintenance, None, is_superuser=True)
    assert user_permissions(bare) == frozenset()


def test_a_superuser_operator_reveals_nothing(world):
    # Rows written past the service: the superuser flag caps what the role gives.
    world.operator.is_superuser = True
    world.operator.save(update_fields=["is_superuser"])
    user = User.objects.get(pk=world.operator.pk)
    assert not user_permissions(user) & PERSONAL_DATA_PERMISSIONS


def test_a_personal_data_holder_cannot_become_sysadmin(world):
    # The organisation rule already forbids it; the explicit rule stays for defence in depth.
    with pytest.raises(services.AccountError):
        services.request_role(actor=world.sysadmin, user=world.operator, role=Role.SYSADMIN)


def test_a_role_in_the_wrong_organisation_counts_for_nothing(world):
    # A row written straight into the database, ignoring the service's rules.
    RoleAssignment.objects.create(user=world.sysadmin, role=Role.OPERATOR, status="active")
    user = User.objects.get(pk=world.sysadmin.pk)
    assert not has_permission(user, Permission.TARGET_REVEAL_CALL)


def test_only_approvers_decide_and_only_sysadmins_request(world):
    user = new_call_centre_user(world)
    for actor in (world.fed_admin, world.security, world.operator, world.staff_a):
        with pytest.raises(services.NotPermitted):
            services.request_role(actor=actor, user=user, role=Role.SUPERVISOR)
    assignment = services.request_role(actor=world.sysadmin, user=user, role=Role.RESEARCHER)
    for actor in (world.supervisor, world.staff_a, world.operator):
        with pytest.raises(services.NotPermitted):
            services.approve_role(actor=actor, assignment=assignment)


def test_refused_and_revoked_roles_grant_nothing(world):
    user = new_call_centre_user(world)
    assignment = services.request_role(actor=world.sysadmin, user=user, role=Role.OPERATOR)
    services.refuse_role(actor=world.security, assignment=assignment)
    assert not has_permission(User.objects.get(pk=user.pk), Permission.TARGET_REVEAL_CALL)
    with pytest.raises(services.AccountError, match="処理済み"):
        services.approve_role(actor=world.fed_admin, assignment=assignment)

    operator = world.operator
    held = operator.role_assignments.get(role=Role.OPERATOR)
    services.revoke_role(actor=world.security, assignment=held)
    assert not has_permission(User.objects.get(pk=operator.pk), Permission.TARGET_REVEAL_CALL)
    held.refresh_from_db()
    assert (held.status, held.revoked_by) == ("revoked", world.security)


def create_contractor(world, username, expires_in):
    return services.create_user(
        actor=world.sysadmin,
        username=username,
        organization=world.call_centre,
        password="a long enough passphrase",
        expires_at=None if expires_in is None else timezone.now() + expires_in,
    )


@pytest.mark.parametrize(
    ("expires_in", "message"),
    [(None, "有効期限が必要"), (timedelta(days=400), "最長1年"), (timedelta(days=-1), "未来")],
)
def test_contractor_accounts_must_expire_within_a_year(world, expires_in, message):
    with pytest.raises(services.AccountError, match=message):
        create_contractor(world, "refused", expires_in)
    assert not User.objects.filter(username="refused").exists()


def test_a_contractor_account_with_a_proper_expiry_is_created(world):
    user = create_contractor(world, "fine", timedelta(days=30))
    assert user.check_password("a long enough passphrase")


def test_weak_passwords_are_refused(world):
    with pytest.raises(services.AccountError):
        services.create_user(
            actor=world.sysadmin, username="weak", organization=world.federation, password="1234"
        )


def test_bootstrap_is_refused_once_an_installation_has_accounts(world):
    with pytest.raises(services.AccountError):
        services.bootstrap_installation(
            accounts=[
                services.FirstAccount(
                    username="intruder",
                    organization=world.federation,
                    password="a long enough passphrase",
                    role=Role.FEDERATION_ADMIN,
                )
            ]
        )
    assert not User.objects.filter(username="intruder").exists()


def test_every_role_belongs_to_one_organisation_kind_and_has_permissions():
    for role in Role:
        assert ROLE_PERMISSIONS[role]
    assert ROLE_PERMISSIONS[Role.SYSADMIN].isdisjoint(PERSONAL_DATA_PERMISSIONS)
    assert ROLE_PERMISSIONS[Role.SUPERVISOR].isdisjoint(PERSONAL_DATA_PERMISSIONS)


def test_approving_a_personal_data_role_takes_the_account_away_from_its_creator(world):
    user = services.create_user(
        actor=world.sysadmin,
        username="new-operator",
        organization=world.call_centre,
        password="known to the sysadmin",
        expires_at=timezone.now() + timedelta(days=30),
    )
    # The sysadmin logs in first and enrols an authenticator of their own…
    sysadmins_device = TOTPDevice.objects.create(user=user, name="sysadmin's", confirmed=True)
    assignment = services.request_role(actor=world.sysadmin, user=user, role=Role.OPERATOR)

    approval = services.approve_role(actor=world.security, assignment=assignment)

    user.refresh_from_db()
    assert approval.handover_password
    assert user.check_password(approval.handover_password)
    assert not user.check_password("known to the sysadmin")
    assert not TOTPDevice.objects.filter(pk=sysadmins_device.pk).exists()


def test_approving_an_approver_role_also_takes_the_account_from_its_creator(world):
    # An approver the sysadmin controls could approve the sysadmin's next request.
    user = make_user("future-officer", world.federation, None)
    TOTPDevice.objects.create(user=user, name="sysadmin's", confirmed=True)
    assignment = services.request_role(actor=world.sysadmin, user=user, role=Role.SECURITY_OFFICER)
    approval = services.approve_role(actor=world.fed_admin, assignment=assignment)
    user.refresh_from_db()
    assert not user.check_password(PASSWORD)
    assert user.check_password(approval.handover_password)
    assert not TOTPDevice.objects.filter(user=user).exists()


def test_approval_revokes_api_tokens_made_before_it(world):
    user = new_call_centre_user(world)
    services.request_role(actor=world.sysadmin, user=user, role=Role.SUPERVISOR)
    token, _ = services.create_api_token(actor=User.objects.get(pk=user.pk), name="t", days=30)
    assignment = services.request_role(actor=world.sysadmin, user=user, role=Role.OPERATOR)
    services.approve_role(actor=world.security, assignment=assignment)
    token.refresh_from_db()
    assert not token.is_usable()


def test_the_requester_is_refused_even_with_the_approve_permission(world):
    # No role has both permissions today; the rule must hold if one ever does.
    user = new_call_centre_user(world)
    assignment = make_request(user, Role.OPERATOR, world.fed_admin)
    with pytest.raises(services.AccountError, match="第二者"):
        services.approve_role(actor=world.fed_admin, assignment=assignment)
    assert RoleAssignment.objects.get(pk=assignment.pk).status == "pending"


def test_a_sysadmin_role_row_blocks_personal_data_roles_in_any_organisation(world):
    user = new_call_centre_user(world)
    RoleAssignment.objects.create(user=user, role=Role.SYSADMIN, status="active")
    with pytest.raises(services.AccountError, match="システム管理者"):
        services.request_role(actor=world.sysadmin, user=user, role=Role.OPERATOR)


def test_a_request_decided_twice_with_stale_copies_is_decided_once(world):
    user = new_call_centre_user(world)
    assignment = services.request_role(actor=world.sysadmin, user=user, role=Role.OPERATOR)
    stale = RoleAssignment.objects.get(pk=assignment.pk)
    approval = services.approve_role(actor=world.fed_admin, assignment=assignment)
    with pytest.raises(services.AccountError, match="処理済み"):
        services.refuse_role(actor=world.security, assignment=stale)
    assert RoleAssignment.objects.get(pk=assignment.pk).status == "active"
    assert User.objects.get(pk=user.pk).check_password(approval.handover_password)


def test_only_an_approver_takes_an_approver_role_away(world):
    held = world.security.role_assignments.get(role=Role.SECURITY_OFFICER)
    with pytest.raises(services.NotPermitted):
        services.revoke_role(actor=world.sysadmin, assignment=held)
    with pytest.raises(services.AccountError, match="ほかの人"):
        services.revoke_role(actor=world.security, assignment=held)
    services.revoke_role(actor=world.fed_admin, assignment=held)
    assert RoleAssignment.objects.get(pk=held.pk).status == "revoked"


def test_sysadmin_takes_away_roles_granted_without_a_second_person(world):
    held = world.supervisor.role_assignments.get(role=Role.SUPERVISOR)
    services.revoke_role(actor=world.sysadmin, assignment=held)
    assert RoleAssignment.objects.get(pk=held.pk).status == "revoked"


def test_a_role_written_straight_into_the_database_grants_nothing_and_alerts(world):
    from yobikake.audit.models import Alert

    crony = make_user("crony", world.call_centre, None)
    RoleAssignment.objects.create(user=crony, role=Role.OPERATOR, status="active")
    assert not has_permission(User.objects.get(pk=crony.pk), Permission.TARGET_REVEAL_CALL)
    alert = Alert.objects.get(rule="forged_authorization")
    assert (alert.severity, alert.subject_user_id) == ("critical", crony.pk)


def test_an_edited_assignment_stops_counting(world):
    held = world.operator.role_assignments.get()
    RoleAssignment.objects.filter(pk=held.pk).update(user=world.supervisor)
    supervisor = User.objects.get(pk=world.supervisor.pk)
    assert not has_permission(supervisor, Permission.TARGET_REVEAL_CALL)


def test_a_request_inserted_by_sql_cannot_be_approved(world, as_user):
    crony = make_user("crony", world.call_centre, None)
    forged = RoleAssignment.objects.create(
        user=crony, role=Role.OPERATOR, status="pending", requested_by=world.sysadmin
    )
    assert "crony" not in as_user(world.security).get("/accounts/role-requests/").text
    with pytest.raises(services.AccountError, match="呼びかけを通して"):
        services.approve_role(actor=world.security, assignment=forged)
    assert RoleAssignment.objects.get(pk=forged.pk).status == "pending"
    assert not has_permission(User.objects.get(pk=crony.pk), Permission.TARGET_REVEAL_CALL)


def test_an_approval_cannot_be_swapped_onto_another_user_or_role(world):
    # The approver's copy was read while a database administrator had the row say
    # something else; the genuine row is what the lock sees. Nothing may be sealed.
    mallory = make_user("mallory", world.federation, None)
    genuine = services.request_role(
        actor=world.sysadmin, user=new_call_centre_user(world), role=Role.OPERATOR
    )
    stale = RoleAssignment.objects.get(pk=genuine.pk)
    stale.user_id, stale.role = mallory.pk, Role.FEDERATION_ADMIN
    with pytest.raises(services.AccountError, match="呼びかけを通して"):
        services.approve_role(actor=world.security, assignment=stale)
    assert not RoleAssignment.objects.filter(user=mallory).exists()
    assert RoleAssignment.objects.get(pk=genuine.pk).status == "pending"


def test_an_expired_contractor_revived_by_sql_holds_no_role(world):
    from yobikake.audit.models import Alert

    User.objects.filter(pk=world.operator.pk).update(
        expires_at=timezone.now() + timedelta(days=3650), is_superuser=False
    )
    operator = User.objects.get(pk=world.operator.pk)
    assert not has_permission(operator, Permission.TARGET_REVEAL_CALL)
    assert Alert.objects.get(rule="forged_authorization").subject_user_id == operator.pk


def test_staff_moved_to_another_insurer_by_sql_sees_nothing(world, as_user):
    User.objects.filter(pk=world.staff_b.pk).update(organization=world.insurer_a.organization)
    moved = User.objects.get(pk=world.staff_b.pk)
    assert as_user(moved).get(f"/insurers/{world.insurer_a.pk}/").status_code == 404


def test_a_revoked_role_revived_with_its_old_mac_holds_nothing(world):
    held = world.operator.role_assignments.get()
    observed = RoleAssignment.objects.get(pk=held.pk)  # the administrator notes the row
    services.revoke_role(actor=world.security, assignment=held)
    RoleAssignment.objects.filter(pk=held.pk).update(
        status="active", revoked_by=None, revoked_at=None, mac=observed.mac
    )
    assert not has_permission(User.objects.get(pk=world.operator.pk), Permission.TARGET_REVEAL_CALL)


def test_a_standing_sealed_in_tokyo_time_holds_when_read_back(world):
    from zoneinfo import ZoneInfo

    expires = (timezone.now() + timedelta(days=30)).astimezone(ZoneInfo("Asia/Tokyo"))
    user = services.create_user(
        actor=world.sysadmin,
        username="tokyo-time",
        organization=world.call_centre,
        password="a long enough passphrase",
        expires_at=expires,
    )
    services.request_role(actor=world.sysadmin, user=user, role=Role.SUPERVISOR)
    assert has_permission(User.objects.get(pk=user.pk), Permission.CAMPAIGN_ANY_RUN)
