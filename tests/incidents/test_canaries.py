"""Canary residents: planted in every list, looking like everyone else in the database,
and never called, counted or shown."""

import re
from dataclasses import replace
from datetime import date

import pytest
from django.db import connection

from tests.calling.conftest import running_campaign
from tests.conftest import load_people
from tests.custody_helpers import open_row, open_rows
from yobikake.accounts.errors import AccountError
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.calling.models import CallTarget
from yobikake.calling.services import start_campaign
from yobikake.custody.alerts import AlertKind, Severity
from yobikake.custody.protocol import CustodyUnavailable
from yobikake.intake.models import Target, TargetList
from yobikake.vault.custodian import custodian
from yobikake.vault.models import Purpose
from yobikake.vault.reveal import reveal
from yobikake.vault.services import issue_grant


def opened(target_list):
    """Every row of the list opened by the custodian: {target id: (kana, birth date)}."""
    rows = open_rows(Target.objects.filter(target_list=target_list), ["name_kana", "birth_date"])
    return {pk: (values["name_kana"], values["birth_date"]) for pk, values in rows.items()}


def test_a_list_gets_its_canaries_among_its_rows_and_every_row_still_opens(world, canaries):
    target_list, people = load_people(world, count=30)
    planted = canaries.of_list(target_list)
    stored = Target.objects.filter(target_list=target_list)

    assert len(planted) == 3 and planted <= set(stored.values_list("pk", flat=True))
    # Counted as the list's rows: only the people sent.
    assert target_list.row_count == 30 == sum(target_list.aggregates["sex_age_band"].values())
    # No gap and no tail of their own: the row numbers run 1..33 without a hole, the
    # people sent in their order, each canary inserted between two of them.
    assert sorted(stored.values_list("row_number", flat=True)) == list(range(1, 34))
    assert all(pk % 10_000_000 < 33 for pk in planted)  # none after the last one sent
    values = opened(target_list)
    real = [v for pk, v in sorted(values.items()) if pk not in planted]
    assert real == [(p.name_kana, p.birth_date.isoformat()) for p in people]
    assert not {v for pk, v in values.items() if pk in planted} & set(real)


def _write_order(target_list):
    """The list's ids in the order the database wrote them: SQLite's rowid (the id is a
    bigint, not an alias of it); on PostgreSQL the command of the test's transaction that
    wrote each row (executemany sends one per row). Not the physical order `ctid`: an
    insert may fill space other tests freed, anywhere in the table."""
    order = "rowid" if connection.vendor == "sqlite" else "cmin::text::bigint, ctid"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM intake_target WHERE target_list_id = %s ORDER BY {order}",
            [target_list.pk],
        )
        return [row[0] for row in cursor.fetchall()]


def test_canaries_are_written_in_row_order_with_their_neighbours(world, canaries, settings):
    settings.YOBIKAKE_IMPORT_WORKERS = 0
    target_list, _ = load_people(world, count=600)  # three batches
    planted = canaries.of_list(target_list)
    written = _write_order(target_list)
    # Every row in row order, the canaries among their row neighbours: nothing after.
    assert written == sorted(written)
    for canary in planted:
        at = written.index(canary)
        assert {canary - 1, canary + 1} & set(written[max(at - 1, 0) : at + 2])


def test_canaries_have_the_shape_of_their_list(world, canaries, tmp_path):
    """A list that gives ages only and no insured numbers, addresses in hyphen form:
    its canaries leave the same columns empty and seal values of the same lengths."""
    import random

    from tests.intake.files import csv_bytes, people, write
    from tests.intake.test_import import run
    from yobikake.synth.areas import random_address, towns_of

    world.insurer_a.name = "岐阜市"  # real towns, as the canaries get
    world.insurer_a.save()
    rng = random.Random(3)
    town_addresses = [
        random_address(towns_of("岐阜市"), rng).text(prefecture=False, dash="-") for _ in range(40)
    ]
    headers = ["氏名", "カナ氏名", "性別", "年齢", "住所", "電話番号"]
    rows = [
        [p.name_kanji, p.name_kana, p.sex, str(p.age_on(date(2023, 3, 31))), address, p.phone]
        for p, address in zip(people(40), town_addresses, strict=True)
    ]
    result = run(world, write(tmp_path, "ages.csv", csv_bytes(rows, headers=headers)))
    target_list = result.target_list
    planted = canaries.of_list(target_list)
    assert len(planted) == 3
    stored = list(Target.objects.filter(target_list=target_list))
    for column in ("birth_date", "insured_number", "postal_code"):
        assert {getattr(t, column) is None for t in stored} == {True}, column
    # Written as the list writes its addresses (so their sealed lengths are drawn as the
    # real ones are): no prefecture, no 丁目・番 after a number (block numbers in hyphens;
    # a town may be named 西野町六丁目北町 or 一番町).
    for canary in (t for t in stored if t.pk in planted):
        address = opened_address(canary)
        assert not address.startswith("岐阜県") and not re.search(r"\d ?(?:丁目|番)", address)


def opened_address(target):
    return open_row(target, ["address"])["address"]


def test_which_rows_are_canaries_only_the_custodian_knows(world, canaries):
    first, _ = load_people(world, count=10)
    second, _ = load_people(world, count=10, seed=2, fiscal_year=2023)
    planted = canaries.of_list(first)
    # Nothing in the application's database says it: a process that has not been told
    # asks the custodian, whose ledger records each telling.
    assert not [t for t in connection.introspection.table_names() if "canar" in t]
    canaries.forget()
    assert canaries.of_list(TargetList.objects.get(pk=first.pk)) == planted
    assert custodian().leave_out(first.pk, 0) == planted
    assert canaries.of_list(second) and not canaries.of_list(second) & planted


def test_without_the_custodian_no_canaries_are_known_and_no_campaign_starts(
    world, canaries, monkeypatch
):
    from tests.calling.conftest import approve_terms, within_contract
    from yobikake.calling.services import assign_operators, create_campaign

    target_list, _ = load_people(world, count=10)
    canaries.forget()

    def unreachable(list_id, campaign_id):
        raise CustodyUnavailable("stopped")

    monkeypatch.setattr(custodian(), "leave_out", unreachable)
    with pytest.raises(CustodyUnavailable):
        canaries.of_list(target_list)
    with within_contract(world, 2022):
        campaign = create_campaign(
            actor=world.supervisor, insurer=world.insurer_a, fiscal_year=2022, lists=[target_list]
        )
        assign_operators(actor=world.supervisor, campaign=campaign, operators=[world.operator])
        approve_terms(world, campaign)
        with pytest.raises(AccountError) as refused:
            start_campaign(actor=world.supervisor, campaign=campaign, seed=1)
    assert refused.value.code == "custodian_unavailable"
    assert not CallTarget.objects.filter(campaign=campaign).exists()
    denial = Event.objects.get(tag=AuditTag.CAMPAIGN_START)
    assert (denial.outcome, denial.reason) == (Event.Outcome.DENIED, "custodian_unavailable")


def test_canaries_never_enter_a_campaigns_queue_or_counts(world, canaries):
    campaign, target_list, _ = running_campaign(world, count=25)
    queued = set(CallTarget.objects.filter(campaign=campaign).values_list("target_id", flat=True))
    assert len(queued) == 25
    assert not queued & canaries.of_list(target_list)


def canary_alerts():
    """The custodian's canary alerts (on its own channel, not the application's)."""
    return [a for a in custodian().custodian.alerts() if a.kind == AlertKind.CANARY_OPENED]


def test_revealing_a_canary_raises_a_critical_alert_in_custody(world, canaries):
    target_list, _ = load_people(world, count=8)
    canary = Target.objects.get(pk=min(canaries.of_list(target_list)))
    # Only a forged or abused assignment could get here: none of the queues offer one.
    issue_grant(actor=world.supervisor, holder=world.operator, target=canary, purpose=Purpose.CALL)
    reveal(world.operator, canary, Purpose.CALL)
    [alert] = canary_alerts()
    assert alert.severity == Severity.CRITICAL
    assert (alert.holder_user_id, alert.list_id) == (world.operator.pk, target_list.pk)


def test_an_ordinary_reveal_raises_no_canary_alert(world, canaries):
    target_list, _ = load_people(world, count=8)
    planted = canaries.of_list(target_list)
    person = Target.objects.filter(target_list=target_list).exclude(pk__in=planted).first()
    issue_grant(actor=world.supervisor, holder=world.operator, target=person, purpose=Purpose.CALL)
    reveal(world.operator, person, Purpose.CALL)
    assert not canary_alerts()


def test_every_list_import_plants_canaries_among_the_files_rows(world, canaries, tmp_path):
    from tests.intake.test_import import run
    from yobikake.synth.lists import write_lists

    entry = write_lists(tmp_path, scale=0.002, seed=7)[0]
    result = run(world, tmp_path / entry.file, policy="exclude")
    target_list = result.target_list
    stored = Target.objects.filter(target_list=target_list)
    assert stored.count() == result.rows_accepted + 3 == target_list.row_count + 3
    assert canaries.of_list(target_list) <= set(stored.values_list("pk", flat=True))


def test_a_list_shorter_than_its_canaries_still_gets_them_all(world, canaries):
    target_list, _ = load_people(world, count=1)
    stored = Target.objects.filter(target_list=target_list)
    assert sorted(stored.values_list("row_number", flat=True)) == [1, 2, 3, 4]
    assert len(canaries.of_list(target_list)) == 3


def test_a_file_shorter_than_its_size_suggests_gets_its_last_canaries_after_its_last_row(
    world, canaries, settings, tmp_path
):
    """Ranks are drawn among the rows the file's size suggests; with most rows invalid,
    fewer are left, and the canaries left over come after the last one — numbered on,
    and in the list's number order."""
    from tests.intake.files import csv_bytes, people, row_of, write
    from tests.intake.test_import import run

    settings.YOBIKAKE_CANARIES_PER_LIST = 10
    persons = [
        replace(p, insured_number=f"岐01-{1000 + 7 * n:07d}") for n, p in enumerate(people(100))
    ]
    rows = [row_of(p) for p in persons]
    for row in rows[30:]:
        row[3] = "X"  # sex: 70 rows excluded
    result = run(world, write(tmp_path, "short.csv", csv_bytes(rows)), policy="exclude")
    stored = list(Target.objects.filter(target_list=result.target_list).order_by("row_number"))
    planted = canaries.of_list(result.target_list)
    assert [t.row_number for t in stored] == list(range(1, 41))
    assert stored[-1].pk in planted
    numbers = [open_row(t)["insured_number"] for t in stored]
    assert numbers == sorted(numbers)
    assert [n for t, n in zip(stored, numbers, strict=True) if t.pk not in planted] == [
        p.insured_number for p in persons[:30]
    ]


def test_canaries_take_watched_numbers_under_their_templates_area_codes(world, canaries, settings):
    settings.YOBIKAKE_CANARIES_PER_LIST = 10
    pool = [f"058-210-{n:04d}" for n in range(10)] + [f"090-1000-{n:04d}" for n in range(10)]
    pool += [f"0584-7{n}-0001" for n in range(10)] + [f"050-3000-40{n:02d}" for n in range(10)]
    settings.YOBIKAKE_CANARY_PHONES = pool
    target_list, people = load_people(world, count=300)  # 058 landlines and 090 mobiles
    planted = [open_row(t) for t in Target.objects.filter(pk__in=canaries.of_list(target_list))]
    heads = {p.phone.split("-")[0] for p in people if p.phone}
    assert heads == {"058", "090"}
    phones = [row["phone"] for row in planted if row["phone"]]
    assert phones and set(phones) <= set(pool)
    assert {phone.split("-")[0] for phone in phones} <= heads
    assert len(set(phones)) == len(phones)  # none given twice in a list while others are free


def test_a_canarys_insured_number_is_nobodys_on_the_insurers_stored_lists(world, canaries):
    _, earlier = load_people(world, count=100, seed=1, fiscal_year=2021)  # 岐01-0000000…99
    target_list, _ = load_people(world, count=20, seed=101)  # 岐01-0000000…19 again
    stored = {p.insured_number for p in earlier}
    for target in Target.objects.filter(pk__in=canaries.of_list(target_list)):
        number = open_row(target)["insured_number"]
        assert number.startswith("岐01-") and number not in stored


def test_canaries_keep_a_phone_or_birth_date_besides_name_and_address(world, canaries, settings):
    """A leaked canary must be found when one typo spoils its address: scoping matches
    name or kana with a phone or birth date too. A canary modelled on a row with neither
    would keep only its address indexes (and its insured number, which leaked files
    often leave out), so a drawn rank falls on the next row that has one."""
    from yobikake.intake.services import load_target_list
    from yobikake.synth.people import synthetic_people

    settings.YOBIKAKE_CANARIES_PER_LIST = 10
    people = synthetic_people(200, seed=7, fiscal_year=2022)
    year_end = date(2023, 3, 31)
    bare = [replace(p, phone="", birth_date=None, age=p.age_on(year_end)) for p in people[:180]]
    target_list = load_target_list(
        actor=world.staff_a, insurer=world.insurer_a, fiscal_year=2022, people=bare + people[180:]
    )
    planted = Target.objects.filter(pk__in=canaries.of_list(target_list))
    assert planted.count() == 10
    for target in planted:
        row = open_row(target)
        assert row["phone"] or row["birth_date"], row
