"""`yobikake tenancy`: the federation's member insurers from a file, and their contracts,
registered from the command line on an installation that has no demo data, each through
the audited services (the command line is the actor: no user, `source: cli`)."""

import json
from datetime import date, time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from yobikake.accounts.models import Organization
from yobikake.accounts.permissions import OrganizationKind
from yobikake.accounts.services import NotPermitted
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.tenancy import services
from yobikake.tenancy.models import BillingRule, Contract, Insurer

INSURERS = "保険者番号,名称,種別\n210013,岐阜市,市町村\n210021,大垣市,\n213272,建設国保,国保組合\n"


def run(*args: str) -> str:
    out = StringIO()
    call_command("tenancy", *args, stdout=out)
    return out.getvalue()


def write(tmp_path, text: str, encoding: str, name: str = "insurers.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def events(tag, **filters):
    return Event.objects.filter(tag=tag, **filters).order_by("seq")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_insurers_are_registered_from_a_file_in_any_encoding_municipal_systems_write(
    db, tmp_path, encoding
):
    said = run("import-insurers", str(write(tmp_path, INSURERS, encoding)))

    assert "3" in said
    registered = {i.number: (i.name, i.kind) for i in Insurer.objects.all()}
    assert registered == {
        "210013": ("岐阜市", Insurer.Kind.MUNICIPALITY),
        "210021": ("大垣市", Insurer.Kind.MUNICIPALITY),
        "213272": ("建設国保", Insurer.Kind.NHI_ASSOCIATION),
    }
    for insurer in Insurer.objects.all():
        org = Organization.objects.get(insurer=insurer)
        assert (org.kind, org.name) == (OrganizationKind.INSURER, insurer.name)
    made = events(AuditTag.INSURER_REGISTER)
    assert [e.insurer_id for e in made] == [
        Insurer.objects.get(number=n).pk for n in ("210013", "210021", "213272")
    ]
    for event in made:
        assert event.outcome == Event.Outcome.ALLOWED
        assert event.actor_user_id is None and event.actor_username == ""
        assert json.loads(event.details) == {"source": "cli"}


def test_running_the_same_file_again_changes_nothing(db, tmp_path):
    path = write(tmp_path, INSURERS, "utf-8")
    run("import-insurers", str(path))
    before = Event.objects.count()

    said = run("import-insurers", str(path))

    assert Insurer.objects.count() == 3 and Organization.objects.count() == 3
    assert Event.objects.count() == before
    assert "0" in said and "3" in said  # none registered, three already there


def test_a_file_with_one_bad_row_registers_no_one_and_names_every_bad_row(db, tmp_path):
    text = (
        "保険者番号,名称\n"
        "210013,岐阜市\n"
        "210014,大垣市\n"  # check digit
        "210039,\n"  # no name
        "210013,岐阜市\n"  # twice
        "06273015,健保組合\n"  # not an NHI number
        "210047,関市,組合\n"  # a third cell the header has no column for
    )
    path = write(tmp_path, text, "cp932")

    with pytest.raises(CommandError) as refused:
        run("import-insurers", str(path))

    report = str(refused.value)
    assert "登録していません" in report
    lines = {line.split(":")[0] for line in report.splitlines() if line.startswith("行")}
    assert lines == {"行3", "行4", "行5", "行6", "行7"}
    assert "検証番号" in report and "名称" in report and "2行目" in report and "6桁" in report
    assert not Insurer.objects.exists() and not Organization.objects.exists()
    [denied] = events(AuditTag.INSURER_REGISTER)
    assert denied.outcome == Event.Outcome.DENIED and denied.reason == "invalid_rows"
    assert denied.actor_user_id is None


def test_a_number_already_registered_under_another_name_is_refused(db, tmp_path):
    run("import-insurers", str(write(tmp_path, INSURERS, "utf-8")))
    renamed = write(tmp_path, "保険者番号,名称\n210013,岐阜市役所\n210047,関市\n", "utf-8", "b.csv")

    with pytest.raises(CommandError, match=r"行2.*岐阜市"):
        run("import-insurers", str(renamed))
    assert not Insurer.objects.filter(number="210047").exists()
    assert Insurer.objects.get(number="210013").name == "岐阜市"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("番号,名前\n210013,岐阜市\n", "保険者番号"),
        ("", "空"),
        ("保険者番号,名称\n", "空"),
    ],
)
def test_a_file_without_the_columns_or_rows_is_refused_clearly(db, tmp_path, text, message):
    with pytest.raises(CommandError, match=message):
        run("import-insurers", str(write(tmp_path, text, "utf-8")))
    assert not Insurer.objects.exists()


def test_a_missing_file_is_refused_clearly(db, tmp_path):
    with pytest.raises(CommandError, match="no file"):
        run("import-insurers", str(tmp_path / "nowhere.csv"))


def test_the_service_refuses_anyone_but_the_federation_admin(world):
    rows = [services.InsurerRow(line=2, number="210047", name="関市", kind="")]
    for actor in (world.staff_b, world.sysadmin, world.supervisor):
        with pytest.raises(NotPermitted):
            services.import_insurers(actor=actor, rows=rows)
    assert not Insurer.objects.filter(number="210047").exists()
    denied = events(AuditTag.INSURER_REGISTER, outcome=Event.Outcome.DENIED)
    assert [e.actor_user_id for e in denied] == [
        world.staff_b.pk,
        world.sysadmin.pk,
        world.supervisor.pk,
    ]
    imported = services.import_insurers(actor=world.fed_admin, rows=rows)
    [insurer] = imported.registered
    [event] = events(AuditTag.INSURER_REGISTER, outcome=Event.Outcome.ALLOWED)
    assert event.actor_user_id == world.fed_admin.pk and event.insurer_id == insurer.pk
    assert event.details == ""  # a user acted: the event says who


CONTRACT = (
    "--insurer",
    "210013",
    "--fiscal-year",
    "2025",
    "--calling-starts",
    "2025-09-01",
    "--calling-ends",
    "2025-12-19",
    "--retention-until",
    "2027-03-31",
)


def test_a_contract_is_created_with_every_field_and_its_event_records_the_deadline(db, tmp_path):
    run("import-insurers", str(write(tmp_path, INSURERS, "utf-8")))

    said = run(
        "create-contract",
        *CONTRACT,
        "--unit-price",
        "450",
        "--billing-rule",
        "per_person_reached",
        "--calling-hours",
        "8:30-19:00",
    )

    contract = Contract.objects.get()
    assert (contract.calling_from, contract.calling_until) == (time(8, 30), time(19, 0))
    assert contract.insurer.number == "210013" and contract.fiscal_year == 2025
    assert (contract.calling_starts, contract.calling_ends, contract.retention_until) == (
        date(2025, 9, 1),
        date(2025, 12, 19),
        date(2027, 3, 31),
    )
    assert contract.unit_price_yen == 450
    assert contract.billing_rule == BillingRule.PER_PERSON_REACHED
    assert "令和7年度" in said
    [created] = events(AuditTag.CONTRACT_CREATE)
    assert created.actor_user_id is None and created.insurer_id == contract.insurer_id
    assert json.loads(created.details) == {
        "contract_id": contract.pk,
        "fiscal_year": 2025,
        "retention_until": 20270331,
        # The calling period and hours campaigns are held to (calling/terms.py).
        "period_starts": 20250901,
        "period_ends": 20251219,
        "hours_from": 830,
        "hours_until": 1900,
        "source": "cli",
    }
    [billing] = events(AuditTag.CONTRACT_BILLING_SET)
    assert json.loads(billing.details)["unit_price_yen"] == 450
    assert json.loads(billing.details)["source"] == "cli"


def test_creating_the_same_contract_again_changes_nothing_and_another_is_refused(db, tmp_path):
    run("import-insurers", str(write(tmp_path, INSURERS, "utf-8")))
    run("create-contract", *CONTRACT)
    before = Event.objects.count()

    assert "変更なし" in run("create-contract", *CONTRACT)
    assert Event.objects.count() == before

    other = [*CONTRACT[:-1], "2028-03-31"]
    with pytest.raises(CommandError, match="既に"):
        run("create-contract", *other)
    assert Contract.objects.get().retention_until == date(2027, 3, 31)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--insurer", "210047"), "210047"),
        (("--calling-ends", "2026-04-01"), "範囲内"),
        (("--retention-until", "2025-12-01"), "保存期限"),
        (("--calling-starts", "2025-09-31"), "2025-09-31"),
        (("--billing-rule", "per_minute"), "per_minute"),
    ],
)
def test_a_bad_contract_is_refused_clearly_and_nothing_is_written(db, tmp_path, change, message):
    run("import-insurers", str(write(tmp_path, INSURERS, "utf-8")))
    args = list(CONTRACT)
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += change
    with pytest.raises(CommandError, match=message):
        run("create-contract", *args)
    assert not Contract.objects.exists()
