"""The reveal gate: one person, for an assigned task, within a budget, on the record.
The drills the issue names (refusals, forged grants and roles, the budget) run on the
local keyring and on OpenBao (`key_profile`)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.conftest import load_people, make_user
from yobikake.accounts.errors import AccountError, NotPermitted
from yobikake.accounts.models import RoleAssignment
from yobikake.accounts.permissions import Role
from yobikake.audit.models import Alert, Event
from yobikake.audit.tags import AuditTag
from yobikake.intake.models import Target
from yobikake.vault import grants
from yobikake.vault.models import Grant, Purpose
from yobikake.vault.reveal import RevealRefused, reveal
from yobikake.vault.services import issue_grant, release_grant


@pytest.fixture
def listed(world):
    target_list, people = load_people(world, count=8)
    targets = list(Target.objects.filter(target_list=target_list).order_by("row_number"))
    return targets, people


def checked_out(world, target, holder=None, purpose=Purpose.CALL):
    holder = holder or world.operator
    return issue_grant(actor=world.supervisor, holder=holder, target=target, purpose=purpose)


def denials(tag=AuditTag.REVEAL_CALL):
    return list(Event.objects.filter(tag=tag, outcome=Event.Outcome.DENIED).order_by("seq"))


def test_an_operator_with_the_call_checked_out_sees_the_call_fields_only(
    key_profile, world, listed
):
    targets, people = listed
    checked_out(world, targets[0])
    shown = reveal(world.operator, targets[0], Purpose.CALL)
    person = people[0]
    assert shown == {
        "name_kanji": person.name_kanji,
        "name_kana": person.name_kana,
        "phone": person.phone,
        "age": str(targets[0].age),
        "sex": person.sex,
    }
    assert person.address not in shown.values()
    assert person.insured_number not in shown.values()


def test_research_shows_the_address_but_not_the_phone_or_insured_number(world, listed):
    targets, people = listed
    row, target = next((n, t) for n, t in enumerate(targets) if not t.has_phone)
    checked_out(world, target, world.researcher, Purpose.RESEARCH)
    shown = reveal(world.researcher, target, Purpose.RESEARCH)
    assert shown["address"] == people[row].address
    assert "phone" not in shown and "insured_number" not in shown


def test_each_reveal_is_on_the_record_with_ids_only(world, listed):
    targets, _ = listed
    grant = checked_out(world, targets[0])
    reveal(world.operator, targets[0], Purpose.CALL)
    event = Event.objects.get(tag=AuditTag.REVEAL_CALL)
    assert event.outcome == Event.Outcome.ALLOWED
    assert (event.actor_user_id, event.target_id, event.purpose) == (
        world.operator.pk,
        targets[0].pk,
        "call",
    )
    assert event.details == f'{{"grant_id":{grant.pk}}}'


def test_nothing_is_revealed_when_the_audit_write_fails(world, listed, monkeypatch):
    targets, _ = listed
    checked_out(world, targets[0])

    def refuse(**kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr("yobikake.vault.reveal.append_event", refuse)
    with pytest.raises(RuntimeError):
        reveal(world.operator, targets[0], Purpose.CALL)


@pytest.mark.parametrize("who", ["superuser", "sysadmin", "operator", "researcher"])
def test_no_one_without_a_grant_sees_anyone_and_each_refusal_is_recorded(
    key_profile, world, listed, who
):
    targets, _ = listed
    actor = {
        "superuser": make_user(
            "root", world.maintenance, Role.SYSADMIN, is_superuser=True, is_staff=True
        ),
        "sysadmin": world.sysadmin,
        "operator": world.operator,
        "researcher": world.researcher,
    }[who]
    with pytest.raises(RevealRefused) as refused:
        reveal(actor, targets[0], Purpose.CALL)
    expected = "no_grant" if who == "operator" else "not_permitted"
    assert refused.value.code == expected
    [denial] = denials()
    assert (denial.actor_user_id, denial.reason, denial.target_id) == (
        actor.pk,
        expected,
        targets[0].pk,
    )


def test_a_grant_is_for_its_holder_its_target_and_its_purpose(world, listed):
    targets, _ = listed
    checked_out(world, targets[0])
    other_operator = make_user("operator-2", world.call_centre, Role.OPERATOR)
    for actor, target in ((other_operator, targets[0]), (world.operator, targets[1])):
        with pytest.raises(RevealRefused):
            reveal(actor, target, Purpose.CALL)
    with pytest.raises(RevealRefused):
        reveal(world.operator, targets[0], Purpose.RESEARCH)
    assert len(denials()) == 2
    assert len(denials(AuditTag.REVEAL_RESEARCH)) == 1
    with pytest.raises(RevealRefused):  # the researcher has no call grant either
        reveal(world.researcher, targets[0], Purpose.CALL)


def test_a_released_or_expired_grant_reveals_nothing(world, listed):
    targets, _ = listed
    grant = checked_out(world, targets[0])
    release_grant(actor=world.operator, grant=grant)
    with pytest.raises(RevealRefused):
        reveal(world.operator, targets[0], Purpose.CALL)
    checked_out(world, targets[1])
    Grant.objects.filter(target=targets[1]).update(expires_at=timezone.now() - timedelta(1))
    with pytest.raises(RevealRefused):
        reveal(world.operator, targets[1], Purpose.CALL)


def test_an_operator_works_one_person_at_a_time(world, listed):
    targets, _ = listed
    checked_out(world, targets[0])
    checked_out(world, targets[1])
    with pytest.raises(RevealRefused):
        reveal(world.operator, targets[0], Purpose.CALL)
    assert reveal(world.operator, targets[1], Purpose.CALL)
    release = Event.objects.get(tag=AuditTag.GRANT_RELEASE)
    assert '"reason":"superseded"' in release.details


def test_only_an_assigner_hands_out_tasks_and_only_to_those_who_may_do_them(world, listed):
    targets, _ = listed
    other = make_user("operator-2", world.call_centre, Role.OPERATOR)
    attempts = [
        (world.operator, world.operator, targets[0], "call"),  # an operator picking anyone
        (world.operator, other, targets[1], "call"),
        (world.supervisor, world.sysadmin, targets[1], "call"),  # a sysadmin handed a call
        (world.supervisor, world.supervisor, targets[1], "call"),
    ]
    for actor, holder, target, purpose in attempts:
        with pytest.raises(NotPermitted):
            issue_grant(actor=actor, holder=holder, target=target, purpose=purpose)
    assert not Grant.objects.exists()
    refused = Event.objects.filter(tag=AuditTag.GRANT_ISSUE, outcome=Event.Outcome.DENIED)
    assert sorted(refused.values_list("reason", flat=True)) == [
        "holder_not_permitted",
        "missing:operator:any:assign",
        "missing:operator:any:assign",
        "self_assignment",
    ]


def test_research_is_only_for_people_without_a_known_phone(world, listed):
    targets, _ = listed
    with_phone = next(t for t in targets if t.has_phone)
    with pytest.raises(AccountError) as refused:
        checked_out(world, with_phone, world.researcher, Purpose.RESEARCH)
    assert refused.value.code == "has_phone"


def _insert_grant_by_sql(holder, target):
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Grant._meta.db_table} "
            "(holder_id, target_id, purpose, issued_by_id, issued_at, expires_at, mac) "
            "VALUES (%s, %s, 'call', %s, %s, %s, %s)",
            [holder.pk, target.pk, holder.pk, now, now + timedelta(hours=1), "0" * 64],
        )


def test_a_grant_inserted_by_sql_is_refused_and_alerted(key_profile, world, listed):
    targets, _ = listed
    _insert_grant_by_sql(world.operator, targets[2])
    with pytest.raises(RevealRefused) as refused:
        reveal(world.operator, targets[2], Purpose.CALL)
    assert refused.value.code == "forged_authorization"
    alert = Alert.objects.get(rule="forged_authorization")
    assert (alert.severity, alert.subject_user_id) == (Alert.Severity.CRITICAL, world.operator.pk)


def test_a_released_grant_put_back_by_sql_is_refused(world, listed):
    targets, _ = listed
    grant = checked_out(world, targets[0])
    genuine_mac = grant.mac
    release_grant(actor=world.operator, grant=grant)
    Grant.objects.filter(pk=grant.pk).update(released_at=None, mac=genuine_mac)
    assert grants.is_sealed(Grant.objects.get(pk=grant.pk))  # the old MAC is genuine...
    with pytest.raises(RevealRefused) as refused:  # ...but the log holds its release
        reveal(world.operator, targets[0], Purpose.CALL)
    assert refused.value.code == "forged_authorization"


def test_an_operator_role_inserted_by_sql_is_refused_and_alerted(key_profile, world, listed):
    targets, _ = listed
    insider = make_user("insider", world.call_centre, None)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {RoleAssignment._meta.db_table} "
            "(user_id, role, status, requested_at, mac) VALUES (%s, 'operator', 'active', %s, '')",
            [insider.pk, timezone.now()],
        )
    _insert_grant_by_sql(insider, targets[3])
    with pytest.raises(RevealRefused) as refused:
        reveal(insider, targets[3], Purpose.CALL)
    assert refused.value.code == "forged_authorization"
    role_forged = Event.objects.get(tag=AuditTag.AUTHZ_FORGED, subject_user_id=insider.pk)
    assert role_forged.reason == "bad_mac"
    assert Alert.objects.filter(
        rule="forged_authorization", severity=Alert.Severity.CRITICAL, subject_user_id=insider.pk
    ).exists()
    assert denials()[-1].reason == "forged_authorization"


def test_an_operator_over_budget_is_refused_and_an_alert_is_raised(
    key_profile, world, listed, settings
):
    settings.YOBIKAKE_REVEAL_BUDGETS = {**settings.YOBIKAKE_REVEAL_BUDGETS, "operator": 3}
    targets, _ = listed
    for target in targets[:3]:
        checked_out(world, target)
        reveal(world.operator, target, Purpose.CALL)
    checked_out(world, targets[3])
    with pytest.raises(RevealRefused) as refused:
        reveal(world.operator, targets[3], Purpose.CALL)
    assert refused.value.code == "over_budget"
    alert = Alert.objects.get(rule="reveal_budget")
    assert (alert.severity, alert.subject_user_id) == (Alert.Severity.CRITICAL, world.operator.pk)


def test_ciphertext_moved_to_another_row_does_not_open(world, listed):
    targets, _ = listed
    source, victim = [t for t in targets if t.phone is not None][:2]
    Target.objects.filter(pk=victim.pk).update(phone=source.phone)
    checked_out(world, victim)
    with pytest.raises(RevealRefused) as refused:
        reveal(world.operator, victim, Purpose.CALL)
    assert refused.value.code == "cannot_open"


def test_a_grant_forged_for_an_account_without_the_role_is_alerted_too(world, listed):
    targets, _ = listed
    _insert_grant_by_sql(world.sysadmin, targets[2])
    with pytest.raises(RevealRefused) as refused:
        reveal(world.sysadmin, targets[2], Purpose.CALL)
    assert refused.value.code == "forged_authorization"
    assert Alert.objects.get(rule="forged_authorization").subject_user_id == world.sysadmin.pk


def test_a_list_moved_to_another_insurer_in_the_database_does_not_open(world, listed):
    targets, _ = listed
    checked_out(world, targets[0])
    Target.objects.filter(pk=targets[0].pk).update(insurer=world.insurer_b)
    with pytest.raises(RevealRefused) as refused:
        reveal(world.operator, targets[0], Purpose.CALL)
    assert refused.value.code == "cannot_open"
    # Moving the list with it: the custodian knows the list's insurer from when its key
    # pair was made, and refuses a request naming another.
    from yobikake.intake.models import TargetList

    TargetList.objects.filter(pk=targets[0].target_list_id).update(insurer=world.insurer_b)
    with pytest.raises(RevealRefused):
        reveal(world.operator, targets[0], Purpose.CALL)
    assert denials()[-1].reason == "custody_bad_request"


def test_staff_moved_to_another_insurer_in_the_database_hold_no_role(world):
    from yobikake.accounts.models import Organization
    from yobikake.accounts.selectors import active_roles
    from yobikake.jp.insurer_numbers import with_check_digit
    from yobikake.tenancy.models import Insurer

    insurer_c = Insurer.objects.create(
        number=with_check_digit("21903"), name="C", kind="municipality"
    )
    Organization.objects.filter(pk=world.staff_b.organization_id).update(insurer=insurer_c)
    staff_b = type(world.staff_b).objects.get(pk=world.staff_b.pk)
    assert active_roles(staff_b) == frozenset()
    assert Alert.objects.filter(rule="forged_authorization", subject_user_id=staff_b.pk).exists()


def test_a_reveal_inside_a_callers_transaction_is_refused(world, listed):
    from django.db import transaction

    targets, _ = listed
    checked_out(world, targets[0])
    connection.atomic_blocks[-1]._from_testcase = False  # behave as outside a test
    try:
        with transaction.atomic(), pytest.raises(RuntimeError):
            reveal(world.operator, targets[0], Purpose.CALL)
    finally:
        connection.atomic_blocks[-1]._from_testcase = True


def test_an_expired_grant_respelled_by_sql_stays_expired(world, listed):
    """On SQLite dates are text: the same instant in another spelling sorts later."""
    targets, _ = listed
    grant = checked_out(world, targets[0])
    past = timezone.now() - timedelta(hours=3)
    Grant.objects.filter(pk=grant.pk).update(expires_at=past, issued_at=past - timedelta(1))
    grants.seal(Grant.objects.get(pk=grant.pk))  # as if it had been issued like that
    respelled = past.strftime("%Y%m%dT%H%M%S.%f") if connection.vendor == "sqlite" else past
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Grant._meta.db_table} SET expires_at = %s WHERE id = %s",
            [respelled, grant.pk],
        )
    with pytest.raises(RevealRefused):
        reveal(world.operator, targets[0], Purpose.CALL)


def test_release_events_begin_with_the_grant_id(world, listed):
    """The reveal gate finds a grant's release by the start of its event's details."""
    targets, _ = listed
    grant = checked_out(world, targets[0])
    release_grant(actor=world.operator, grant=grant)
    event = Event.objects.get(tag=AuditTag.GRANT_RELEASE)
    assert event.details.startswith(f'{{"grant_id":{grant.pk},')


def test_an_export_grant_goes_only_to_the_targets_own_insurer(world, listed):
    targets, people = listed
    with pytest.raises(NotPermitted):
        issue_grant(
            actor=world.fed_admin, holder=world.staff_b, target=targets[0], purpose="export"
        )
    refused = Event.objects.get(tag=AuditTag.GRANT_ISSUE, outcome=Event.Outcome.DENIED)
    assert (refused.actor_user_id, refused.reason) == (world.fed_admin.pk, "not_yours")
    with pytest.raises(RevealRefused):  # and insurer B's staff reveal nothing of A's
        reveal(world.staff_b, targets[0], Purpose.EXPORT)
    issue_grant(actor=world.fed_admin, holder=world.staff_a, target=targets[0], purpose="export")
    shown = reveal(world.staff_a, targets[0], Purpose.EXPORT)
    assert shown["insured_number"] == people[0].insured_number
    assert Event.objects.filter(
        tag=AuditTag.REVEAL_EXPORT, outcome=Event.Outcome.ALLOWED, actor_user_id=world.staff_a.pk
    ).exists()


# Statements of one reveal for a call, the test's savepoints left out: the live grant
# (with its target, its list and the wrapped keys its values name, in one), and the event
# with the budget count in its transaction. PostgreSQL appends an event in one statement
# where SQLite takes three (audit/services.py). bench/vault.py's warm p95 goal (≤ 5 ms)
# has little room: a statement added here fails this test; measure the benchmark again
# before changing it.
REVEAL_STATEMENTS = {"sqlite": 5, "postgresql": 3}


def test_a_reveal_makes_a_fixed_number_of_statements_and_reads_its_keys_with_its_grant(
    world, listed, settings
):
    from django.test.utils import CaptureQueriesContext

    settings.YOBIKAKE_CALLING_HOURS = (0, 24)  # within calling hours: no off-hours alert
    targets, people = listed
    checked_out(world, targets[0])
    with CaptureQueriesContext(connection) as context:
        shown = reveal(world.operator, targets[0], Purpose.CALL)
    assert shown["name_kanji"] == people[0].name_kanji
    statements = [q["sql"] for q in context.captured_queries if "SAVEPOINT" not in q["sql"].upper()]
    listed_sql = "\n".join(s[:160] for s in statements)
    assert len(statements) == REVEAL_STATEMENTS[connection.vendor], listed_sql
    assert [s for s in statements if "sealedbatch" in s] == statements[:1], listed_sql


def test_a_value_sealed_later_under_its_own_key_opens_with_the_rest(world, listed):
    from yobikake.vault import batches

    targets, people = listed
    target = targets[0]
    phone = "058-201-0000"  # the synthetic range
    sealed = batches.seal_value(
        target.target_list, Target._meta.db_table, "phone", target.pk, phone
    )
    Target.objects.filter(pk=target.pk).update(phone=sealed)
    checked_out(world, target)
    shown = reveal(world.operator, target, Purpose.CALL)
    assert (shown["phone"], shown["name_kana"]) == (phone, people[0].name_kana)
