"""Billing: the rules count the right cases, the closing statement of a campaign worked
through the calling services, its downloads, the terms' audit trail — and another
insurer gets 404."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.utils.translation import gettext
from openpyxl import load_workbook

from tests.calling.conftest import running_campaign
from tests.conftest import comparable, verified_client
from yobikake.accounts.errors import AccountError
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.calling import services as calling
from yobikake.calling.models import CallTarget
from yobikake.tenancy import selectors, services
from yobikake.tenancy.billing import Person, Reason, Terms, bill
from yobikake.tenancy.models import BillingRule, Contract
from yobikake.tenancy.services import TenancyError

# A hand-made set: (calls, reached, last outcome).
PEOPLE = [
    Person(1, True, "intends"),  # reached at once
    Person(3, False, "no_answer"),  # three tries, never an answer
    Person(3, False, "no_answer"),  # the same again: one line, two people
    Person(2, False, "voicemail"),  # two tries only
    Person(0, False, None),  # never called (no number found)
    Person(3, True, "declined"),  # reached at the third try
    Person(1, False, "wrong_number"),  # one try, a wrong number
    Person(4, False, "family_message"),  # the household, never the person, four tries
]


@pytest.mark.parametrize(
    ("rule", "tries", "cases"),
    [
        (BillingRule.REACHED_OR_TRIES, 3, 5),  # 2 reached + 3 with three or more tries
        (BillingRule.REACHED_OR_TRIES, 2, 6),  # … and the two-try voicemail too
        (BillingRule.REACHED_OR_TRIES, 5, 2),  # nobody reaches five tries: the reached
        (BillingRule.PER_PERSON_REACHED, 3, 2),
        (BillingRule.PER_PERSON_ATTEMPTED, 3, 7),
        (BillingRule.PER_ATTEMPT, 3, 1 + 3 + 3 + 2 + 3 + 1 + 4),
    ],
)
def test_each_rule_counts_the_cases_it_says(rule, tries, cases):
    result = bill(PEOPLE, Terms(unit_price_yen=1_980, rule=rule, unanswered_tries=tries))
    assert result.persons == len(PEOPLE)
    assert result.cases == cases
    assert result.amount_yen == cases * 1_980
    assert isinstance(result.amount_yen, int)
    assert sum(line.persons for line in result.lines) == len(PEOPLE)
    assert sum(line.cases for line in result.lines) == cases


def test_the_breakdown_says_who_counted_and_why():
    result = bill(PEOPLE, Terms(unit_price_yen=1_000, rule=BillingRule.REACHED_OR_TRIES))
    lines = {(line.last_outcome, line.attempts): line for line in result.lines}
    assert lines[("no_answer", 3)].persons == 2 and lines[("no_answer", 3)].cases == 2
    assert lines[("no_answer", 3)].reason == Reason.TRIES
    assert lines[("intends", 1)].reason == Reason.REACHED
    assert lines[("declined", 3)].cases == 1  # reached after tries: still one case
    assert lines[("voicemail", 2)].reason == Reason.TOO_FEW_TRIES
    assert lines[("wrong_number", 1)].cases == 0
    assert lines[(None, 0)].reason == Reason.NOT_CALLED
    assert lines[("family_message", 4)].reason == Reason.TRIES  # the household is no answer
    assert result.counted_persons == 5
    # The counted lines come first: the page reads from what is paid.
    assert [line.cases > 0 for line in result.lines] == [True] * 4 + [False] * 3


def test_a_person_counts_once_however_many_tries():
    result = bill([Person(9, False, "busy")], Terms(500, BillingRule.REACHED_OR_TRIES, 3))
    assert result.cases == 1 and result.amount_yen == 500


def _work(campaign, world, calling_day, script):
    """Call everyone callable now, the outcome of the n-th call picked by `script(n)`
    (a code, or (code, simulated)); {call target id: [codes]}."""
    made: dict[int, list[str]] = {}
    n = 0
    while True:
        try:
            checkout = calling.next_call(operator=world.operator)
        except calling.NothingToCall:
            return made
        picked = script(n)
        code, simulated = picked if isinstance(picked, tuple) else (picked, False)
        calling.record_outcome(
            actor=world.operator,
            call_target_id=checkout.call_target.pk,
            code=code,
            simulated=simulated,
        )
        made.setdefault(checkout.call_target.pk, []).append(code)
        n += 1


@pytest.fixture
def worked(calling_day, world):
    """Insurer A's FY2022 campaign worked over two days: five reached at once, one
    "reached" only by the demo's simulation, two reached at the second try, one wrong
    number at the second try, the rest three tries without an answer."""
    campaign, _, _ = running_campaign(world, count=30)
    first = _work(
        campaign,
        world,
        calling_day,
        lambda n: (
            "intends" if n < 3 else "declined" if n < 5 else ("intends", True) if n == 5 else "busy"
        ),
    )
    calling_day.shift(timedelta(hours=5))
    second = _work(
        campaign,
        world,
        calling_day,
        lambda n: "considering" if n < 2 else "wrong_number" if n == 2 else "no_answer",
    )
    calling_day.shift(timedelta(hours=19))
    third = _work(campaign, world, calling_day, lambda n: "voicemail")
    contract = Contract.objects.get(insurer=world.insurer_a, fiscal_year=2022)
    services.set_billing_terms(
        actor=world.fed_admin,
        contract=contract,
        unit_price_yen=1_650,
        rule=BillingRule.REACHED_OR_TRIES,
    )
    return campaign, contract, (first, second, third)


def test_the_statement_of_a_worked_campaign(worked):
    campaign, contract, (first, second, third) = worked
    three_tries = len(third)
    assert three_tries > 0 and len(second) == 3 + three_tries
    statement = selectors.closing_statement(contract)
    # Reached: five at once and two at the second try; the simulated "intends" is not
    # billed; the wrong number (two tries) is not a case.
    assert statement.bill.cases == 5 + 2 + three_tries
    assert statement.bill.amount_yen == (7 + three_tries) * 1_650
    assert statement.simulated == 1
    called = CallTarget.objects.filter(campaign=campaign, holdout=False).count()
    assert statement.bill.persons == called
    assert statement.holdout == CallTarget.objects.filter(campaign=campaign, holdout=True).count()
    assert statement.holdout > 0
    # The statement agrees with the progress page's outcome counts less the simulation.
    assert statement.agrees
    check = {o.disposition.code: o for o in statement.outcomes}
    assert (check["intends"].on_progress, check["intends"].simulated) == (4, 1)
    assert check["intends"].billed == 3
    assert check["no_answer"].billed == three_tries
    assert check["voicemail"].billed == three_tries
    assert check["busy"].billed == len(first) - 6


def test_the_statement_follows_the_rule_on_the_contract(worked, world):
    _, contract, (first, second, third) = worked
    services.set_billing_terms(
        actor=world.fed_admin, contract=contract, unit_price_yen=700, rule=BillingRule.PER_ATTEMPT
    )
    statement = selectors.closing_statement(contract)
    assert statement.bill.cases == len(first) - 1 + len(second) + len(third)
    assert statement.bill.amount_yen == statement.bill.cases * 700


def test_the_insurer_and_the_federation_see_the_statement_page(worked, world):
    _, contract, _ = worked
    for user in (world.staff_a, world.fed_admin):
        page = verified_client(user).get(f"/contracts/{contract.pk}/statement/")
        assert page.status_code == 200
        assert 'data-testid="check-agrees"' in page.text
        assert page.context["statement"].bill.cases == int(page.context["statement"].bill.cases)
    assert 'data-testid="terms-form"' in page.text  # the federation's
    staff_page = verified_client(world.staff_a).get(f"/contracts/{contract.pk}/statement/")
    assert 'data-testid="terms-form"' not in staff_page.text
    assert gettext("Closing statement") in staff_page.text
    amount = staff_page.context["statement"].bill.amount_yen
    assert f"{amount:,}" in staff_page.text
    insurer_page = verified_client(world.staff_a).get(f"/insurers/{world.insurer_a.pk}/")
    assert f'data-testid="statement-{contract.pk}"' in insurer_page.text


def test_the_statement_downloads_as_csv_and_xlsx(worked, world):
    _, contract, _ = worked
    amount = selectors.closing_statement(contract).bill.amount_yen
    client = verified_client(world.staff_a)
    response = client.get(f"/contracts/{contract.pk}/statement.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    totals = {row[0]: row[1:] for row in rows if row}
    assert totals[gettext("Amount (yen)")] == [str(amount)]
    assert totals[gettext("Unit price (yen)")] == ["1650"]
    xlsx = client.get(f"/contracts/{contract.pk}/statement.xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    cells = {row[0]: row[1] for row in sheet.iter_rows(values_only=True) if row and row[0]}
    assert cells[gettext("Amount (yen)")] == amount  # a number, not text: the insurer can sum it


@pytest.mark.parametrize("suffix", ["statement/", "statement.csv", "statement.xlsx"])
def test_another_insurers_staff_gets_404_and_the_probe_is_on_record(world, suffix):
    contract = Contract.objects.get(insurer=world.insurer_a, fiscal_year=2022)
    client = verified_client(world.staff_b)
    not_yours = client.get(f"/contracts/{contract.pk}/{suffix}")
    missing = client.get(f"/contracts/999999/{suffix}")
    assert not_yours.status_code == missing.status_code == 404
    assert comparable(not_yours) == comparable(missing)
    denials = Event.objects.filter(tag=AuditTag.CONTRACT_DENY, actor_user_id=world.staff_b.pk)
    assert sorted(e.reason for e in denials) == ["missing", "not_yours"]


def test_the_call_centre_may_not_see_statements(world):
    contract = Contract.objects.get(insurer=world.insurer_a, fiscal_year=2022)
    response = verified_client(world.supervisor).get(f"/contracts/{contract.pk}/statement/")
    assert response.status_code == 403


def test_setting_the_terms_writes_one_event_with_before_and_after(world):
    contract = Contract.objects.get(insurer=world.insurer_a, fiscal_year=2022)
    before = Event.objects.count()
    services.set_billing_terms(
        actor=world.fed_admin,
        contract=contract,
        unit_price_yen=2_200,
        rule=BillingRule.PER_PERSON_REACHED,
    )
    (event,) = Event.objects.order_by("seq")[before:]
    assert event.tag == AuditTag.CONTRACT_BILLING_SET and event.outcome == "allowed"
    assert event.insurer_id == world.insurer_a.pk
    details = json.loads(event.details)
    assert details["contract_id"] == contract.pk
    assert (details["unit_price_yen_before"], details["unit_price_yen"]) == (0, 2_200)
    assert (details["rule_before"], details["rule"]) == ("reached_or_tries", "per_person_reached")
    contract.refresh_from_db()
    assert (contract.unit_price_yen, contract.billing_rule) == (2_200, "per_person_reached")


def test_terms_are_set_on_the_statement_page_by_the_federation_only(world):
    contract = Contract.objects.get(insurer=world.insurer_a, fiscal_year=2022)
    form = {
        "unit_price_yen": "1800",
        "billing_rule": "per_person_attempted",
        "unanswered_tries": "4",
    }
    url = f"/contracts/{contract.pk}/billing/"
    assert verified_client(world.staff_a).post(url, form).status_code == 403
    response = verified_client(world.fed_admin).post(url, form)
    assert response.status_code == 302
    contract.refresh_from_db()
    assert (contract.unit_price_yen, contract.billing_rule, contract.unanswered_tries) == (
        1_800,
        "per_person_attempted",
        4,
    )
    assert Event.objects.filter(tag=AuditTag.CONTRACT_BILLING_SET).count() == 1


def test_bad_terms_are_refused_and_the_refusal_recorded(world):
    contract = Contract.objects.get(insurer=world.insurer_a, fiscal_year=2022)
    with pytest.raises(TenancyError):
        services.set_billing_terms(
            actor=world.fed_admin,
            contract=contract,
            unit_price_yen=1_000,
            rule=BillingRule.REACHED_OR_TRIES,
            unanswered_tries=0,
        )
    with pytest.raises(AccountError):
        services.set_billing_terms(
            actor=world.staff_a, contract=contract, unit_price_yen=1, rule=BillingRule.PER_ATTEMPT
        )
    contract.refresh_from_db()
    assert contract.unit_price_yen == 0
    denied = Event.objects.filter(tag=AuditTag.CONTRACT_BILLING_SET, outcome="denied")
    assert denied.count() == 2


def test_a_contract_without_campaigns_has_an_empty_statement(world):
    contract = Contract.objects.get(insurer=world.insurer_b, fiscal_year=2022)
    page = verified_client(world.staff_b).get(f"/contracts/{contract.pk}/statement/")
    assert page.status_code == 200
    statement = page.context["statement"]
    assert (statement.bill.persons, statement.bill.cases, statement.bill.amount_yen) == (0, 0, 0)
    assert statement.agrees and 'data-testid="no-price"' in page.text


def test_a_person_on_two_of_the_years_lists_is_billed_once(calling_day, world):
    """The same people on two lists of one year (a list sent again, corrected): each is
    two call targets, and one person, one case."""
    from yobikake.intake.services import load_target_list

    campaign, _, people = running_campaign(world, count=4)
    again = load_target_list(
        actor=world.staff_a, insurer=world.insurer_a, fiscal_year=2022, people=people
    )
    # A second campaign of the year over the second list (the contract covers both).
    second = calling.create_campaign(
        actor=world.supervisor, insurer=world.insurer_a, fiscal_year=2022, lists=[again]
    )
    calling.assign_operators(actor=world.supervisor, campaign=second, operators=[world.operator])
    calling.start_campaign(actor=world.supervisor, campaign=second, seed=1)
    made = _work(campaign, world, calling_day, lambda n: "intends")
    made |= _work(second, world, calling_day, lambda n: "intends")
    contract = Contract.objects.get(insurer=world.insurer_a, fiscal_year=2022)
    services.set_billing_terms(
        actor=world.fed_admin, contract=contract, unit_price_yen=1_000,
        rule=BillingRule.PER_PERSON_REACHED,
    )  # fmt: skip
    statement = selectors.closing_statement(Contract.objects.get(pk=contract.pk))
    assert len(made) == 2 * statement.bill.cases > 0  # two call targets per person
    assert statement.bill.amount_yen == statement.bill.cases * 1_000
