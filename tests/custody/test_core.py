"""The custodian: what it opens, what it refuses (and records, and alerts), whatever the
application's request says."""

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.custody.conftest import (
    CALL_FIELDS,
    INSURER_ID,
    LIST_ID,
    PERSON,
    configure,
    new_batch,
)
from yobikake.custody.config import Config
from yobikake.custody.core import Custodian, verify_certificate
from yobikake.custody.ledger import Kind
from yobikake.custody.protocol import CustodyRefused, Purpose, Refusal


def refused(custodian, request) -> str:
    with pytest.raises(CustodyRefused) as caught:
        custodian.open(request)
    return caught.value.code


def last(custodian, kind):
    return [e for e in custodian.entries() if e.kind == kind][-1]


def alert_kinds(custodian) -> list[str]:
    return [a.kind for a in custodian.alerts()]


# -- opening -------------------------------------------------------------------------------


def test_a_person_sealed_by_the_application_opens_on_either_keyring(custodian):
    batch = new_batch(custodian)
    opened = custodian.open(batch.request(row_id=4))
    assert opened.values == {name: PERSON[name] for name in CALL_FIELDS}
    entry = last(custodian, Kind.OPEN)
    assert opened.ledger_seq == entry.seq == custodian.head().seq
    assert (entry.holder_user_id, entry.holder_role, entry.purpose, entry.grant_id) == (
        7,
        "operator",
        "call",
        3,
    )
    assert (entry.insurer_id, entry.list_id, entry.row_id) == (INSURER_ID, LIST_ID, 4)
    assert entry.fields == CALL_FIELDS
    assert custodian.verify_ledger().ok


def test_an_empty_field_opens_as_empty(local_custodian):
    batch = new_batch(local_custodian)
    values = {"name_kanji": PERSON["name_kanji"], "name_kana": PERSON["name_kana"], "phone": None}
    assert local_custodian.open(batch.request(values=values)).values["phone"] == ""


def test_the_public_key_is_the_lists_and_create_is_idempotent(local_custodian):
    pem = local_custodian.create_list(LIST_ID, INSURER_ID)
    assert local_custodian.create_list(LIST_ID, INSURER_ID) == pem
    assert local_custodian.public_key(LIST_ID) == pem
    assert [e.kind for e in local_custodian.entries()].count(Kind.CREATE_LIST) == 1
    with pytest.raises(CustodyRefused) as caught:
        local_custodian.create_list(LIST_ID, INSURER_ID + 1)
    assert caught.value.code == Refusal.BAD_REQUEST


def test_a_warm_open_asks_the_keyring_once_per_batch_and_ttl(home, clock):
    ticks = [0.0]
    custodian = Custodian(home, clock=clock, monotonic=lambda: ticks[0])
    batch = new_batch(custodian)
    calls = []
    decrypt = custodian.keyring.decrypt
    custodian.keyring.decrypt = lambda *args: calls.append(args) or decrypt(*args)
    for row_id in (1, 2, 3):
        custodian.open(batch.request(row_id=row_id))
    assert len(calls) == 1
    ticks[0] = 301.0  # the TTL is 300 s
    custodian.open(batch.request(row_id=4))
    assert len(calls) == 2
    custodian.close()


def test_each_start_of_a_custodian_is_on_the_ledger(home, clock):
    for _ in range(2):
        Custodian(home, clock=clock).close()
    starts = [e for e in Custodian(home, clock=clock).entries() if e.kind == Kind.START]
    assert [(e.outcome, e.reason) for e in starts] == [("ok", "local")] * 3


# -- refusals ------------------------------------------------------------------------------


def test_a_call_never_gets_the_address_or_the_insured_number(local_custodian):
    batch = new_batch(local_custodian)
    for extra in ("address", "insured_number"):
        request = batch.request(fields=(*CALL_FIELDS, extra))
        assert refused(local_custodian, request) == Refusal.FIELDS
    entry = last(local_custodian, Kind.REFUSE)
    assert (entry.reason, entry.fields) == (Refusal.FIELDS, (*CALL_FIELDS, "insured_number"))


def test_each_purpose_gets_its_own_fields(local_custodian):
    batch = new_batch(local_custodian)
    research = ("name_kanji", "address", "postal_code")
    opened = local_custodian.open(batch.request(purpose=Purpose.RESEARCH, fields=research))
    assert set(opened.values) == set(research)
    assert local_custodian.open(batch.request(purpose=Purpose.DIAL, fields=("phone",))).values
    request = batch.request(purpose=Purpose.DIAL, fields=("phone", "name_kanji"))
    assert refused(local_custodian, request) == Refusal.FIELDS


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: replace(r, sealed={**r.sealed, "address": None}), id="extra"),
        pytest.param(lambda r: replace(r, sealed={"phone": r.sealed["phone"]}), id="missing"),
        pytest.param(
            lambda r: replace(r, justification=replace(r.justification, fields=("phone", "phone"))),
            id="twice",
        ),
        pytest.param(
            lambda r: replace(r, justification=replace(r.justification, purpose="bulk")),
            id="purpose",
        ),
        pytest.param(
            lambda r: replace(r, justification=replace(r.justification, row_id="1")), id="row"
        ),
        pytest.param(
            lambda r: replace(r, justification=replace(r.justification, insurer_id=INSURER_ID + 1)),
            id="insurer",
        ),
        pytest.param(lambda r: replace(r, wrapped_keys=b"key"), id="wrapped"),
        pytest.param(
            lambda r: replace(r, wrapped_keys={"1": next(iter(r.wrapped_keys.values()))}),
            id="batch id",
        ),
        pytest.param(
            lambda r: replace(r, wrapped_keys={**r.wrapped_keys, 2**64: b"key"}), id="batch range"
        ),
        pytest.param(
            lambda r: replace(
                r, wrapped_keys={**r.wrapped_keys, **{n: b"key" for n in range(10**6, 10**6 + 16)}}
            ),
            id="17 keys",
        ),
        pytest.param(lambda r: replace(r, wrapped_keys={}), id="batch missing"),
    ],
)
def test_a_malformed_request_is_refused(local_custodian, change):
    request = change(new_batch(local_custodian).request())
    assert refused(local_custodian, request) == Refusal.BAD_REQUEST


@pytest.mark.parametrize(
    ("at", "purpose", "fields", "allowed"),
    [
        (datetime(2026, 12, 7, 0, 0, tzinfo=UTC), Purpose.CALL, CALL_FIELDS, True),  # 9:00
        (datetime(2026, 12, 6, 23, 59, tzinfo=UTC), Purpose.DIAL, ("phone",), False),  # 8:59
        (datetime(2026, 12, 7, 10, 59, tzinfo=UTC), Purpose.CALL, CALL_FIELDS, True),  # 19:59
        (datetime(2026, 12, 7, 11, 0, tzinfo=UTC), Purpose.CALL, CALL_FIELDS, False),  # 20:00
        (datetime(2026, 12, 12, 3, 0, tzinfo=UTC), Purpose.CALL, CALL_FIELDS, True),  # Sat
        (datetime(2026, 12, 13, 3, 0, tzinfo=UTC), Purpose.CALL, CALL_FIELDS, False),  # Sun
        (datetime(2026, 12, 13, 3, 0, tzinfo=UTC), Purpose.RESEARCH, ("name_kanji",), True),
    ],
)
def test_calls_only_within_calling_hours_on_the_custodians_clock(
    local_custodian, clock, at, purpose, fields, allowed
):
    batch = new_batch(local_custodian)
    clock.now = at
    request = batch.request(purpose=purpose, fields=fields)
    if allowed:
        assert local_custodian.open(request).values
    else:
        assert refused(local_custodian, request) == Refusal.HOURS


def test_a_list_never_created_is_refused(local_custodian):
    batch = new_batch(local_custodian)
    request = batch.request()
    request = replace(request, justification=replace(request.justification, list_id=LIST_ID + 1))
    assert refused(local_custodian, request) == Refusal.UNKNOWN_LIST


def test_a_value_moved_to_another_row_does_not_open_and_is_alerted(local_custodian):
    batch = new_batch(local_custodian)
    request = batch.request(row_id=2)
    moved = replace(request, justification=replace(request.justification, row_id=1))
    assert refused(local_custodian, moved) == Refusal.CANNOT_OPEN
    assert alert_kinds(local_custodian) == ["cannot_open"]
    assert local_custodian.alerts()[0].severity == "critical"


def test_a_batch_key_of_another_list_does_not_open(local_custodian):
    other = new_batch(local_custodian, list_id=LIST_ID + 1)
    batch = new_batch(local_custodian)
    request = replace(batch.request(), wrapped_keys={batch.batch_id: other.wrapped})
    assert refused(local_custodian, request) == Refusal.CANNOT_OPEN


def test_a_row_s_values_open_each_with_the_key_of_the_batch_it_names(local_custodian):
    """A phone number researched after the import is sealed under a key of its own."""
    imported, researched = new_batch(local_custodian), new_batch(local_custodian)
    names = imported.seal(4, {"name_kanji": PERSON["name_kanji"], "name_kana": None})
    phone = researched.seal(4, {"phone": "058-000-0000"})
    request = replace(
        imported.request(row_id=4),
        wrapped_keys={**imported.wrapped_keys, **researched.wrapped_keys},
        sealed={**names, **phone},
    )
    opened = local_custodian.open(request)
    assert opened.values == {
        "name_kanji": PERSON["name_kanji"],
        "name_kana": "",
        "phone": "058-000-0000",
    }
    without_it = replace(request, wrapped_keys=imported.wrapped_keys)
    assert refused(local_custodian, without_it) == Refusal.BAD_REQUEST
    assert alert_kinds(local_custodian) == []


def test_a_value_naming_another_batch_does_not_open_and_is_alerted(local_custodian):
    imported, researched = new_batch(local_custodian), new_batch(local_custodian)
    request = imported.request()
    phone = bytearray(request.sealed["phone"])
    phone[1:9] = researched.batch_id.to_bytes(8, "big")  # the header, changed
    request = replace(
        request,
        wrapped_keys={**imported.wrapped_keys, **researched.wrapped_keys},
        sealed={**request.sealed, "phone": bytes(phone)},
    )
    assert refused(local_custodian, request) == Refusal.CANNOT_OPEN
    assert alert_kinds(local_custodian) == ["cannot_open"]


def test_a_value_in_another_format_does_not_open(local_custodian):
    batch = new_batch(local_custodian)
    request = batch.request()
    old = b"\x01" + request.sealed["phone"][9:]  # the scheme before batch ids
    request = replace(request, sealed={**request.sealed, "phone": old})
    assert refused(local_custodian, request) == Refusal.CANNOT_OPEN


def test_a_key_gone_from_the_keyring_outside_custody_is_alerted(home, clock):
    custodian = Custodian(home, clock=clock)
    request = new_batch(custodian).request()
    custodian.close()
    (home / "keys" / f"list-{LIST_ID}.pem").unlink()
    custodian = Custodian(home, clock=clock)
    assert refused(custodian, request) == Refusal.CANNOT_OPEN
    assert refused(custodian, request) == Refusal.CANNOT_OPEN
    assert alert_kinds(custodian) == ["key_missing"]  # once in the hour for this holder
    with pytest.raises(CustodyRefused):
        custodian.public_key(LIST_ID)
    custodian.close()


# -- budgets -------------------------------------------------------------------------------


def test_each_holder_has_an_hourly_budget_by_role(home, clock):
    configure(home, holder_hourly={"operator": 3, "researcher": 5, "default": 1})
    custodian = Custodian(home, clock=clock)
    batch = new_batch(custodian)
    for row_id in range(1, 4):
        custodian.open(batch.request(row_id=row_id))
    assert refused(custodian, batch.request(row_id=4)) == Refusal.HOLDER_BUDGET
    assert custodian.open(batch.request(row_id=4, user_id=8)).values  # another operator
    research = {"purpose": Purpose.RESEARCH, "fields": ("name_kanji",), "role": "researcher"}
    for row_id in range(1, 6):
        custodian.open(batch.request(row_id=row_id, user_id=9, **research))
    assert refused(custodian, batch.request(user_id=9, **research)) == Refusal.HOLDER_BUDGET
    clock.advance(minutes=30)
    assert refused(custodian, batch.request(row_id=4)) == Refusal.HOLDER_BUDGET
    clock.advance(minutes=30, seconds=1)  # the first opens are more than an hour old
    assert custodian.open(batch.request(row_id=4)).values
    custodian.close()


def test_the_centres_budget_holds_whoever_asks_and_is_a_critical_alert(home, clock):
    configure(home, centre_hourly=4)
    custodian = Custodian(home, clock=clock)
    batch = new_batch(custodian)
    for user_id in range(1, 5):
        custodian.open(batch.request(user_id=user_id))
    assert refused(custodian, batch.request(user_id=5)) == Refusal.CENTRE_BUDGET
    assert refused(custodian, batch.request(user_id=6)) == Refusal.CENTRE_BUDGET
    assert alert_kinds(custodian) == ["centre_budget"]  # once in the hour, not per request
    assert custodian.alerts()[0].severity == "critical"
    clock.advance(hours=1, seconds=1)
    assert custodian.open(batch.request(user_id=5)).values
    custodian.close()


def test_a_burst_of_invented_holders_is_refused_within_the_minute_and_alerted(
    local_custodian, clock
):
    """The insider drill: whoever holds the application's credentials names a new holder
    in each request, each with a fresh hourly budget; the centre's minute stops them."""
    batch = new_batch(local_custodian)
    for user_id in range(1000, 1030):  # 30 invented holders, one open each, in 30 s
        assert local_custodian.open(batch.request(row_id=user_id, user_id=user_id)).values
        clock.advance(seconds=1)
    assert alert_kinds(local_custodian) == []
    assert refused(local_custodian, batch.request(user_id=1030)) == Refusal.CENTRE_BURST
    assert refused(local_custodian, batch.request(user_id=1031)) == Refusal.CENTRE_BURST
    [alert] = local_custodian.alerts()
    assert (alert.kind, alert.severity, alert.holder_user_id) == ("centre_burst", "critical", None)
    assert "30 people within a minute" in alert.summary
    assert "refused first to holder 1030" in alert.summary
    clock.advance(seconds=30.5)  # the first open is more than a minute old
    assert local_custodian.open(batch.request(user_id=1032)).values
    assert refused(local_custodian, batch.request(user_id=1033)) == Refusal.CENTRE_BURST
    assert alert_kinds(local_custodian) == ["centre_burst"]  # once in ten minutes
    clock.advance(minutes=10)
    for user_id in range(2000, 2030):
        local_custodian.open(batch.request(user_id=user_id))
    assert refused(local_custodian, batch.request(user_id=2030)) == Refusal.CENTRE_BURST
    # On the way, the 51st holder within the hour: more than the centre's 50 seats.
    assert alert_kinds(local_custodian) == ["centre_burst", "seats", "centre_burst"]


def test_the_burst_limit_is_the_security_officer_s(home, clock):
    configure(home, centre_per_minute=2)
    custodian = Custodian(home, clock=clock)
    batch = new_batch(custodian)
    custodian.open(batch.request(user_id=1))
    custodian.open(batch.request(user_id=2))
    assert refused(custodian, batch.request(user_id=3)) == Refusal.CENTRE_BURST
    custodian.close()


def test_more_holders_within_an_hour_than_seats_is_one_critical_alert_an_hour(home, clock):
    configure(home, seats=3)
    custodian = Custodian(home, clock=clock)
    batch = new_batch(custodian)
    for user_id in (1, 2, 3, 1, 2):
        custodian.open(batch.request(user_id=user_id))
        clock.advance(minutes=1)
    assert alert_kinds(custodian) == []
    assert custodian.open(batch.request(user_id=4)).values  # alerted, not refused
    [alert] = custodian.alerts()
    assert (alert.kind, alert.severity) == ("seats", "critical")
    assert "4 holders opened within the hour" in alert.summary
    assert "3 seats" in alert.summary
    custodian.open(batch.request(user_id=5))
    assert alert_kinds(custodian) == ["seats"]
    clock.advance(hours=1, seconds=1)
    for user_id in (6, 7, 8, 9):
        custodian.open(batch.request(user_id=user_id))
    assert alert_kinds(custodian) == ["seats", "seats"]
    custodian.close()


def test_concurrent_opens_never_exceed_the_budget(home, clock):
    configure(home, holder_hourly={"default": 10})
    custodian = Custodian(home, clock=clock)
    batch = new_batch(custodian)
    requests = [batch.request(row_id=row_id) for row_id in range(1, 41)]
    outcomes: list[str] = []

    def open_some(part):
        for request in part:
            try:
                custodian.open(request)
                outcomes.append("opened")
            except CustodyRefused as refusal:
                outcomes.append(refusal.code)

    threads = [threading.Thread(target=open_some, args=(requests[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("opened") == 10
    assert outcomes.count(Refusal.HOLDER_BUDGET) == 30
    assert custodian.verify_ledger().ok
    custodian.close()


def test_refusals_over_the_threshold_are_one_critical_alert_an_hour(local_custodian, clock):
    batch = new_batch(local_custodian)
    asking_too_much = batch.request(fields=(*CALL_FIELDS, "address"))
    for _ in range(4):
        refused(local_custodian, asking_too_much)
    assert alert_kinds(local_custodian) == []
    refused(local_custodian, asking_too_much)
    refused(local_custodian, asking_too_much)
    assert alert_kinds(local_custodian) == ["refusals"]
    alert = local_custodian.alerts()[0]
    assert (alert.severity, alert.holder_user_id) == ("critical", 7)
    assert "5 refusals" in alert.summary
    refused(local_custodian, batch.request(fields=(*CALL_FIELDS, "address"), user_id=8))
    assert alert_kinds(local_custodian) == ["refusals"]  # another holder: 1 refusal
    clock.advance(hours=1, seconds=1)
    for _ in range(5):
        refused(local_custodian, asking_too_much)
    assert alert_kinds(local_custodian) == ["refusals", "refusals"]


# -- canaries ------------------------------------------------------------------------------


def test_a_canary_opens_like_anyone_and_raises_a_critical_alert(local_custodian):
    batch = new_batch(local_custodian)
    local_custodian.register_canaries(LIST_ID, [2, 5])
    assert local_custodian.open(batch.request(row_id=1)).values
    assert alert_kinds(local_custodian) == []
    opened = local_custodian.open(batch.request(row_id=5, user_id=8))
    assert opened.values == {name: PERSON[name] for name in CALL_FIELDS}
    [alert] = local_custodian.alerts()
    assert (alert.kind, alert.severity, alert.holder_user_id, alert.list_id) == (
        "canary_opened",
        "critical",
        8,
        LIST_ID,
    )
    alert_entry = last(local_custodian, Kind.ALERT)
    assert (alert_entry.row_id, alert_entry.reason) == (5, "canary_opened")
    assert alert_entry.seq == opened.ledger_seq + 1


def test_canaries_are_registered_once(local_custodian):
    new_batch(local_custodian)
    local_custodian.register_canaries(LIST_ID, [2])
    with pytest.raises(CustodyRefused) as caught:
        local_custodian.register_canaries(LIST_ID, [])
    assert caught.value.code == Refusal.CANARIES_REGISTERED
    assert alert_kinds(local_custodian) == ["canaries_again"]
    assert local_custodian.leave_out(LIST_ID, campaign_id=4) == frozenset({2})


def test_a_campaign_is_told_the_rows_to_leave_out_on_the_ledger(local_custodian):
    new_batch(local_custodian)
    local_custodian.register_canaries(LIST_ID, [3, 9])
    assert local_custodian.leave_out(LIST_ID, campaign_id=4) == frozenset({3, 9})
    entry = last(local_custodian, Kind.LEAVE_OUT)
    assert (entry.list_id, entry.campaign_id, entry.reason) == (LIST_ID, 4, "2 rows")


# -- shredding -----------------------------------------------------------------------------


def test_shredding_destroys_the_key_and_certifies_it(custodian, keyring_kind, home):
    batch = new_batch(custodian)
    request = batch.request()
    custodian.open(request)  # its batch key is now cached
    fingerprint = custodian.keyring.fingerprint(LIST_ID)
    certificate = custodian.shred(LIST_ID)
    assert (certificate.list_id, certificate.insurer_id) == (LIST_ID, INSURER_ID)
    assert certificate.key_fingerprint == fingerprint
    assert custodian.verify_certificate(certificate)
    assert verify_certificate(certificate, custodian.custody_public_key())
    assert refused(custodian, request) == Refusal.SHREDDED
    if keyring_kind == "local":
        assert not (home / "keys" / f"list-{LIST_ID}.pem").exists()
    with pytest.raises(Exception, match="list"):
        custodian.keyring.public_pem(LIST_ID)
    with pytest.raises(CustodyRefused) as caught:
        custodian.create_list(LIST_ID, INSURER_ID)
    assert caught.value.code == Refusal.SHREDDED
    assert custodian.shred(LIST_ID) == certificate  # asked again: the same certificate
    entry = last(custodian, Kind.SHRED)
    assert (entry.list_id, entry.reason) == (LIST_ID, fingerprint)


@pytest.mark.parametrize(
    "change",
    [
        {"list_id": LIST_ID + 1},
        {"insurer_id": INSURER_ID + 1},
        {"key_fingerprint": "0" * 64},
        {"destroyed_at": "2020-01-01T00:00:00.000000+00:00"},
    ],
)
def test_a_tampered_certificate_does_not_verify(local_custodian, change):
    new_batch(local_custodian)
    certificate = local_custodian.shred(LIST_ID)
    assert not local_custodian.verify_certificate(replace(certificate, **change))


def test_a_certificate_signed_by_another_custody_key_does_not_verify(local_custodian, tmp_path):
    new_batch(local_custodian)
    certificate = local_custodian.shred(LIST_ID)
    other = Config.init(tmp_path / "other")
    other_custodian = Custodian(other.home)
    assert not other_custodian.verify_certificate(certificate)
    other_custodian.close()


# -- alerts and what custody files hold ----------------------------------------------------


def test_each_alert_is_a_line_of_alerts_log(local_custodian, home):
    batch = new_batch(local_custodian)
    local_custodian.register_canaries(LIST_ID, [1])
    local_custodian.open(batch.request(row_id=1))
    lines = (home / "alerts.log").read_text().splitlines()
    [line] = [json.loads(line) for line in lines]
    assert (line["kind"], line["severity"], line["list_id"]) == ("canary_opened", "critical", 11)
    assert line["label"] == "カナリア（おとりの住民）が開かれました"
    assert (home / "alerts.log").stat().st_mode & 0o077 == 0


def test_no_personal_value_reaches_the_ledger_or_the_alert_log(local_custodian, home):
    """Opens, refusals, alerts, and requests that carry values where names belong."""
    batch = new_batch(local_custodian)
    local_custodian.register_canaries(LIST_ID, [2])
    local_custodian.open(batch.request(row_id=1))
    local_custodian.open(batch.request(row_id=2))
    refused(local_custodian, batch.request(fields=(*CALL_FIELDS, "address")))
    smuggling = batch.request()
    smuggling = replace(
        smuggling,
        justification=replace(
            smuggling.justification,
            holder=replace(smuggling.justification.holder, role=PERSON["name_kanji"]),
            fields=(PERSON["phone"],),
        ),
        sealed={PERSON["phone"]: None},
    )
    refused(local_custodian, smuggling)
    local_custodian.shred(LIST_ID)
    local_custodian.close()
    stored = b"".join(
        path.read_bytes()
        for path in home.iterdir()
        if path.name.startswith("ledger.sqlite3") or path.name == "alerts.log"
    )
    leaked = [value for value in PERSON.values() if value.encode() in stored]
    assert not leaked


def test_the_custody_package_imports_nothing_of_the_application():
    """Every module of yobikake.custody, imported in a fresh interpreter, brings in no
    Django and no application package: only yobikake.jp is shared."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import yobikake.custody as package\n"
        "for module in pkgutil.iter_modules(package.__path__):\n"
        "    importlib.import_module('yobikake.custody.' + module.name)\n"
        "allowed = ('yobikake', 'yobikake.custody', 'yobikake.jp')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'django' or (\n"
        "    m.startswith('yobikake') and not m.startswith(allowed)))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ["PATH"]},
    )
    assert result.stdout.strip() == ""
