"""Bulk opening in custody: an approved export's rows of one insurer, within the
custodian's own limits, on one ledger entry that names no value, each export an info
alert and a canary among its rows a critical one — and its values leave custody only in
a file encrypted to the insurer (`produce_file`); synthetic organisations opened in bulk
only on a custodian made for them."""

import csv
import io
from dataclasses import dataclass, replace

import pyrage
import pytest

from tests.custody.conftest import (
    INSURER_ID,
    INSURER_KEY,
    LIST_ID,
    PERSON,
    configure,
    new_batch,
)
from tests.custody.server_fixture import register_staff
from yobikake.custody.config import Config
from yobikake.custody.core import Custodian
from yobikake.custody.ledger import Kind
from yobikake.custody.protocol import (
    BulkRequest,
    CustodyRefused,
    FileRequest,
    Holder,
    Purpose,
    Refusal,
    SealedCell,
)

pytestmark = pytest.mark.usefixtures("insurer_key_confirmed")

EXPORT_FIELDS = ("name_kanji", "phone", "address", "insured_number")
SUPERVISOR = Holder(user_id=5, role="supervisor")


def export_of(batches, row_ids, *, fields=EXPORT_FIELDS, purpose=Purpose.EXPORT, approval=9):
    """A bulk request for `row_ids` of each batch's list (each row's values from its
    batch; PERSON's values, the phone empty in even rows)."""
    rows, keys = [], {}
    for batch in batches:
        keys.setdefault(batch.list_id, {}).update(batch.wrapped_keys)
        for row_id in row_ids:
            values = {name: PERSON[name] for name in fields}
            if "phone" in values and row_id % 2 == 0:
                values["phone"] = None
            rows.append(batch.row(row_id + 1000 * batch.list_id, values))
    return BulkRequest(
        holder=SUPERVISOR,
        purpose=purpose,
        approval_id=approval,
        insurer_id=batches[0].insurer_id,
        fields=fields,
        rows=rows,
        wrapped_keys=keys,
    )


def file_of(request: BulkRequest, *, recipient=None) -> FileRequest:
    """An export file of one line per row: its id (the application's text) and each of
    its fields (filled in custody)."""
    return FileRequest(
        bulk=request,
        name="export.csv",
        header=("row", *request.fields),
        lines=[
            [str(row.row_id), *(SealedCell(row_id=row.row_id, field=f) for f in request.fields)]
            for row in request.rows
        ],
        recipient=recipient or str(INSURER_KEY.to_public()),
    )


def read_file(data: bytes) -> list[list[str]]:
    text = pyrage.decrypt(data, [INSURER_KEY]).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


@dataclass
class Exported:
    values: dict[int, dict[str, str]]
    ledger_seq: int


def export(custodian, request: BulkRequest) -> Exported:
    """`request`'s rows as the insurer reads them: through a file encrypted to it (an
    export), or opened in bulk (synthetic organisations)."""
    if request.purpose == Purpose.SYNTHETIC:
        opened = custodian.open_bulk(request)
        return Exported(opened.values, opened.ledger_seq)
    produced = custodian.produce_file(file_of(request))
    header, *lines = read_file(produced.data)
    values = {int(line[0]): dict(zip(header[1:], line[1:], strict=True)) for line in lines}
    return Exported(values, produced.ledger_seq)


def refused(custodian, request) -> str:
    with pytest.raises(CustodyRefused) as caught:
        export(custodian, request)
    return caught.value.code


def bulk_entries(custodian):
    return [e for e in custodian.entries() if e.kind == Kind.OPEN_BULK]


def test_an_export_opens_its_rows_on_one_ledger_entry_and_an_info_alert(local_custodian):
    batch = new_batch(local_custodian)
    opened = export(local_custodian, export_of([batch], range(1, 6)))
    assert sorted(opened.values) == [11001, 11002, 11003, 11004, 11005]
    assert opened.values[11001] == {name: PERSON[name] for name in EXPORT_FIELDS}
    assert opened.values[11002]["phone"] == ""
    [entry] = bulk_entries(local_custodian)
    assert opened.ledger_seq == entry.seq
    assert (entry.holder_user_id, entry.holder_role, entry.purpose, entry.grant_id) == (
        5,
        "supervisor",
        "export",
        9,
    )
    assert (entry.insurer_id, entry.fields) == (INSURER_ID, EXPORT_FIELDS)
    assert entry.reason.startswith(f"5 rows of lists {LIST_ID} into export.csv (5 lines)")
    assert [e.kind for e in local_custodian.entries()].count(Kind.OPEN) == 0
    [alert] = local_custodian.alerts()
    assert (alert.kind, alert.severity, alert.holder_user_id, alert.list_id) == (
        "bulk_opened",
        "info",
        5,
        LIST_ID,
    )
    assert "5 rows" in alert.summary and "approval 9" in alert.summary
    assert local_custodian.verify_ledger().ok


def test_rows_of_several_lists_and_batches_open_each_with_its_own_key(local_custodian):
    first, second = new_batch(local_custodian), new_batch(local_custodian)
    other_list = new_batch(local_custodian, list_id=LIST_ID + 1)
    request = export_of([first, other_list], range(1, 3))
    later = second.row(11003, {name: PERSON[name] for name in EXPORT_FIELDS})
    request = replace(
        request,
        rows=[*request.rows, later],
        wrapped_keys={
            LIST_ID: {**first.wrapped_keys, **second.wrapped_keys},
            LIST_ID + 1: other_list.wrapped_keys,
        },
    )
    opened = export(local_custodian, request)
    assert sorted(opened.values) == [11001, 11002, 11003, 12001, 12002]
    assert bulk_entries(local_custodian)[0].reason.startswith(
        f"5 rows of lists {LIST_ID},{LIST_ID + 1} into"
    )
    assert local_custodian.alerts()[0].list_id is None  # several lists


def test_nothing_of_an_export_reaches_the_ledger_or_the_alert_log(local_custodian, home):
    batch = new_batch(local_custodian)
    local_custodian.register_canaries(LIST_ID, [11002])
    export(local_custodian, export_of([batch], range(1, 4)))
    local_custodian.close()
    stored = b"".join(
        path.read_bytes()
        for path in home.iterdir()
        if path.name.startswith("ledger.sqlite3") or path.name == "alerts.log"
    )
    assert b"supervisor" in stored  # the files are read, and hold the entry
    assert not [value for value in PERSON.values() if value.encode() in stored]


def test_a_canary_among_the_rows_is_a_critical_alert_and_still_opens(local_custodian):
    batch = new_batch(local_custodian)
    local_custodian.register_canaries(LIST_ID, [11002, 11004, 11099])
    opened = export(local_custodian, export_of([batch], range(1, 5)))
    assert opened.values[11004]["name_kanji"] == PERSON["name_kanji"]
    kinds = [(a.kind, a.severity) for a in local_custodian.alerts()]
    assert kinds == [("bulk_opened", "info"), ("canary_opened", "critical")]
    canary = local_custodian.alerts()[1]
    assert canary.summary.startswith("2 canaries opened in bulk by holder 5 (supervisor)")
    assert f"list {LIST_ID} row 11002, list {LIST_ID} row 11004" in canary.summary
    assert (canary.holder_user_id, canary.list_id) == (5, LIST_ID)


def test_an_export_has_at_most_bulk_max_rows(home, clock):
    configure(home, bulk_max_rows=3)
    custodian = Custodian(home, clock=clock)
    batch = new_batch(custodian)
    assert refused(custodian, export_of([batch], range(1, 5))) == Refusal.BULK_LIMIT
    assert len(export(custodian, export_of([batch], range(1, 4))).values) == 3
    refusal = [e for e in custodian.entries() if e.kind == Kind.REFUSE][-1]
    assert (refusal.reason, refusal.holder_user_id, refusal.grant_id) == (Refusal.BULK_LIMIT, 5, 9)
    custodian.close()


def test_the_centre_has_bulk_per_day_exports_within_24_hours(home, clock):
    configure(home, bulk_per_day=2)
    custodian = Custodian(home, clock=clock)
    batch = new_batch(custodian)
    export(custodian, export_of([batch], [1]))
    clock.advance(hours=12)
    export(custodian, replace(export_of([batch], [2]), holder=Holder(6, "supervisor")))
    clock.advance(hours=11)
    assert refused(custodian, export_of([batch], [3])) == Refusal.BULK_LIMIT
    clock.advance(hours=1, seconds=1)  # the first is more than a day old
    assert export(custodian, export_of([batch], [3])).values
    custodian.close()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"fields": ("name_kanji", "note")}, Refusal.FIELDS),
        ({"purpose": Purpose.CALL}, Refusal.BAD_REQUEST),
        ({"approval_id": -1}, Refusal.BAD_REQUEST),
        ({"insurer_id": INSURER_ID + 1}, Refusal.BAD_REQUEST),
        ({"fields": ()}, Refusal.BAD_REQUEST),
        ({"wrapped_keys": {LIST_ID: {"1": b"key"}}}, Refusal.BAD_REQUEST),
    ],
)
def test_a_malformed_or_overreaching_bulk_request_is_refused(local_custodian, change, code):
    request = replace(export_of([new_batch(local_custodian)], range(1, 3)), **change)
    assert refused(local_custodian, request) == code
    assert bulk_entries(local_custodian) == []


def test_rows_must_be_the_insurer_s_distinct_rows_with_the_fields_asked(local_custodian):
    batch = new_batch(local_custodian)
    request = export_of([batch], range(1, 3))
    first = request.rows[0]
    for rows in (
        [first, replace(first, insurer_id=INSURER_ID + 1)],
        [first, first],
        [first, replace(first, sealed={"phone": None})],
        [first, replace(first, table="intake person")],
    ):
        assert refused(local_custodian, replace(request, rows=rows)) == Refusal.BAD_REQUEST


def test_a_list_of_another_insurer_unknown_or_shredded_is_refused(local_custodian):
    other_insurer = new_batch(local_custodian, list_id=LIST_ID + 1, insurer_id=INSURER_ID + 1)
    request = export_of([other_insurer], [1])
    as_ours = replace(
        request,
        insurer_id=INSURER_ID,
        rows=[replace(row, insurer_id=INSURER_ID) for row in request.rows],
    )
    assert refused(local_custodian, as_ours) == Refusal.BAD_REQUEST
    batch = new_batch(local_custodian)
    unknown = export_of([replace(batch, list_id=LIST_ID + 5)], [1])
    assert refused(local_custodian, unknown) == Refusal.UNKNOWN_LIST
    local_custodian.shred(LIST_ID)
    assert refused(local_custodian, export_of([batch], [1])) == Refusal.SHREDDED


def test_a_value_whose_batch_key_is_missing_or_moved_opens_nothing(local_custodian):
    batch = new_batch(local_custodian)
    request = export_of([batch], range(1, 3))
    assert refused(local_custodian, replace(request, wrapped_keys={})) == Refusal.BAD_REQUEST
    first, second = request.rows
    moved = replace(second, sealed={**second.sealed, "address": first.sealed["address"]})
    assert refused(local_custodian, replace(request, rows=[first, moved])) == Refusal.CANNOT_OPEN
    assert [a.kind for a in local_custodian.alerts()] == ["cannot_open"]
    assert bulk_entries(local_custodian) == []


def test_synthetic_bulk_is_refused_by_a_custodian_of_real_data(local_custodian):
    batch = new_batch(local_custodian)
    request = export_of([batch], [1], purpose=Purpose.SYNTHETIC)
    assert refused(local_custodian, request) == Refusal.NOT_SYNTHETIC
    refusal = [e for e in local_custodian.entries() if e.kind == Kind.REFUSE][-1]
    assert (refusal.reason, refusal.purpose) == (Refusal.NOT_SYNTHETIC, "synthetic")


def test_a_synthetic_custodian_opens_everything_in_bulk_on_the_ledger_without_alerts(
    tmp_path, clock
):
    home = Config.init(tmp_path / "synthetic", synthetic=True).home
    register_staff(home, (INSURER_ID,))
    configure(home, bulk_max_rows=2, bulk_per_day=1)
    custodian = Custodian(home, clock=clock)
    custodian.confirm_recipient(INSURER_ID, str(INSURER_KEY.to_public()))
    batch = new_batch(custodian)
    custodian.register_canaries(LIST_ID, [11001])
    every_field = ("name_kanji", "name_kana", "phone", "address", "postal_code", "insured_number")
    for _ in range(2):  # neither the row limit nor the day's count holds
        opened = export(
            custodian,
            export_of([batch], range(1, 5), fields=every_field, purpose=Purpose.SYNTHETIC),
        )
        assert len(opened.values) == 4
    assert [e.purpose for e in bulk_entries(custodian)] == ["synthetic", "synthetic"]
    assert custodian.alerts() == []
    # Its exports keep the export's rules.
    export(custodian, export_of([batch], [1]))
    assert refused(custodian, export_of([batch], [2])) == Refusal.BULK_LIMIT
    custodian.close()


def test_bulk_opens_count_for_no_single_open_budget(home, clock):
    configure(home, centre_per_minute=1)
    custodian = Custodian(home, clock=clock)
    batch = new_batch(custodian)
    export(custodian, export_of([batch], range(1, 10)))
    assert custodian.open(batch.request()).values
    custodian.close()
