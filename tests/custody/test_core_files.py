"""Export files made in custody: the custodian fills the application's template with the
values it opens, writes them in the named forms, sorts, and encrypts the file to the
insurer's age key; only ciphertext leaves, the ledger names the file, and an export's
values never leave in the clear (`open_bulk` refuses an export)."""

import hashlib
from dataclasses import replace

import pyrage
import pytest

from tests.custody.conftest import INSURER_ID, LIST_ID, PERSON, new_batch
from tests.custody.test_core_bulk import (
    INSURER_KEY,
    SUPERVISOR,
    bulk_entries,
    export_of,
    file_of,
    read_file,
)
from yobikake.custody.ledger import Kind
from yobikake.custody.protocol import (
    BulkRequest,
    CustodyRefused,
    FileRequest,
    Purpose,
    Refusal,
    SealedCell,
)

pytestmark = pytest.mark.usefixtures("insurer_key_confirmed")

BIRTH = "1975-01-02"


def birth_request(custodian) -> BulkRequest:
    """Rows 1 and 2 of a batch with a name and a birth date (row 2 without one)."""
    batch = new_batch(custodian)
    rows = [
        batch.row(1, {"name_kana": "イチ", "birth_date": BIRTH}),
        batch.row(2, {"name_kana": "アイ", "birth_date": None}),
    ]
    return BulkRequest(
        holder=SUPERVISOR,
        purpose=Purpose.EXPORT,
        approval_id=9,
        insurer_id=INSURER_ID,
        fields=("name_kana", "birth_date"),
        rows=rows,
        wrapped_keys={LIST_ID: batch.wrapped_keys},
    )


def second_cell(request: FileRequest, cell: SealedCell) -> FileRequest:
    first = request.lines[0]
    return replace(request, lines=[[first[0], cell, *first[2:]], *request.lines[1:]])


def refused_file(custodian, request: FileRequest) -> str:
    with pytest.raises(CustodyRefused) as caught:
        custodian.produce_file(request)
    return caught.value.code


def test_the_file_is_filled_in_the_named_forms_sorted_and_encrypted(local_custodian):
    request = birth_request(local_custodian)

    def line(row_id: int, outcome: str) -> list:
        return [
            SealedCell(row_id, "name_kana"),
            SealedCell(row_id, "birth_date", "wareki"),
            SealedCell(row_id, "birth_date", "slash_date"),
            SealedCell(row_id, "birth_date", "age_on", "2023-03-31", empty="61"),
            outcome,
        ]

    produced = local_custodian.produce_file(
        FileRequest(
            bulk=request,
            name="results-1.csv",
            header=("カナ", "和暦", "西暦", "年齢", "結果"),
            # A watermark row of the application's own text, sorted in among them.
            lines=[line(1, "未架電"), line(2, "受診予定"), ["ウエ", "", "", "55", "未架電"]],
            recipient=str(INSURER_KEY.to_public()),
            sort_by=(0,),
        )
    )

    assert produced.name == "results-1.csv.age"
    assert produced.data.startswith(b"age-encryption.org/v1\n")
    assert read_file(produced.data) == [
        ["カナ", "和暦", "西暦", "年齢", "結果"],
        ["アイ", "", "", "61", "受診予定"],
        ["イチ", "昭和50年1月2日", "1975/01/02", "48", "未架電"],
        ["ウエ", "", "", "55", "未架電"],
    ]
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(produced.data, [pyrage.x25519.Identity.generate()])


def test_only_ciphertext_leaves_and_the_ledger_names_the_file(local_custodian):
    batch = new_batch(local_custodian)
    produced = local_custodian.produce_file(file_of(export_of([batch], range(1, 4))))
    for value in PERSON.values():
        assert value.encode() not in produced.data
    [entry] = bulk_entries(local_custodian)
    assert entry.seq == produced.ledger_seq and entry.purpose == "export"
    assert entry.reason == (
        f"3 rows of lists {LIST_ID} into export.csv (3 lines) for {INSURER_KEY.to_public()} "
        f"sha256:{hashlib.sha256(produced.data).hexdigest()}"
    )
    [alert] = local_custodian.alerts()
    assert alert.kind == "bulk_opened" and str(INSURER_KEY.to_public()) in alert.summary


def test_a_file_for_a_key_custody_has_not_confirmed_is_refused_and_alerted(local_custodian):
    """The insider names an age key of their own (the application's word names no key):
    nothing is opened, and the security officer hears of it at once."""
    batch = new_batch(local_custodian)
    insiders = str(pyrage.x25519.Identity.generate().to_public())
    with pytest.raises(CustodyRefused) as caught:
        local_custodian.produce_file(file_of(export_of([batch], range(1, 4)), recipient=insiders))
    assert caught.value.code == Refusal.RECIPIENT
    assert bulk_entries(local_custodian) == []
    [alert] = local_custodian.alerts()
    assert (alert.kind, alert.severity) == ("recipient", "critical")
    assert insiders in alert.summary and str(INSURER_KEY.to_public()) in alert.summary
    other_insurer = replace(export_of([batch], range(1, 2)), insurer_id=INSURER_ID + 1)
    with pytest.raises(CustodyRefused):
        local_custodian.produce_file(file_of(other_insurer))  # confirmed for INSURER_ID only


def test_the_confirmed_key_is_the_last_the_officer_confirmed(local_custodian):
    batch = new_batch(local_custodian)
    new_key = pyrage.x25519.Identity.generate()
    seq = local_custodian.confirm_recipient(INSURER_ID, str(new_key.to_public()))
    assert local_custodian.confirm_recipient(INSURER_ID, str(new_key.to_public())) is None
    [entry] = [e for e in local_custodian.entries() if e.seq == seq]
    assert (entry.kind, entry.insurer_id, entry.reason) == (
        Kind.RECIPIENT,
        INSURER_ID,
        str(new_key.to_public()),
    )
    with pytest.raises(CustodyRefused):
        local_custodian.produce_file(file_of(export_of([batch], range(1, 2))))  # the old key
    request = file_of(export_of([batch], range(1, 2)), recipient=str(new_key.to_public()))
    assert pyrage.decrypt(local_custodian.produce_file(request).data, [new_key])
    with pytest.raises(ValueError, match="age"):
        local_custodian.confirm_recipient(INSURER_ID, "age1notakey")


def test_an_export_s_values_are_never_opened_in_the_clear(local_custodian):
    batch = new_batch(local_custodian)
    with pytest.raises(CustodyRefused) as caught:
        local_custodian.open_bulk(export_of([batch], range(1, 3)))
    assert caught.value.code == Refusal.BAD_REQUEST
    assert bulk_entries(local_custodian) == []
    [refusal] = [e for e in local_custodian.entries() if e.kind == Kind.REFUSE]
    assert (refusal.reason, refusal.purpose, refusal.grant_id) == (Refusal.BAD_REQUEST, "export", 9)


def test_a_field_the_export_may_not_open_is_refused(local_custodian):
    batch = new_batch(local_custodian)
    # A call's note: sealed, but no export's.
    request = replace(export_of([batch], range(1, 3)), fields=("name_kanji", "note"))
    assert refused_file(local_custodian, file_of(request)) == Refusal.FIELDS
    synthetic = export_of([batch], range(1, 3), purpose=Purpose.SYNTHETIC)
    assert refused_file(local_custodian, file_of(synthetic)) == Refusal.BAD_REQUEST
    assert bulk_entries(local_custodian) == []


@pytest.mark.parametrize(
    "spoil",
    [
        lambda f: replace(f, recipient="age1notakey"),
        lambda f: replace(f, recipient="-----BEGIN PUBLIC KEY-----"),
        lambda f: replace(f, name="../../etc/export.csv"),
        lambda f: replace(f, name="export.sh"),
        lambda f: replace(f, sort_by=(len(f.header),)),
        lambda f: replace(f, lines=[[*f.lines[0], "one cell too many"]]),
        # A cell naming a row the request does not open, or a field it does not ask.
        lambda f: second_cell(f, SealedCell(999, "name_kanji")),
        lambda f: second_cell(f, SealedCell([11001], "name_kanji")),  # type: ignore[arg-type]
        lambda f: second_cell(f, SealedCell(11001, ["name_kanji"])),  # type: ignore[arg-type]
        lambda f: second_cell(f, SealedCell(11001, "birth_date")),
        # A formatter for dates on a name; an unknown formatter; age_on without its day.
        lambda f: second_cell(f, SealedCell(11001, "name_kanji", "wareki")),
        lambda f: second_cell(f, SealedCell(11001, "name_kanji", "eval")),
        lambda f: second_cell(f, SealedCell(11001, "name_kanji", "age_on")),
    ],
)  # fmt: skip
def test_a_template_that_is_not_a_plain_file_for_the_insurer_is_refused(local_custodian, spoil):
    request = file_of(export_of([new_batch(local_custodian)], range(1, 3)))
    assert refused_file(local_custodian, spoil(request)) == Refusal.BAD_REQUEST
    assert bulk_entries(local_custodian) == []


def test_a_birth_date_that_is_not_a_date_is_refused_and_alerted(local_custodian):
    batch = new_batch(local_custodian)
    request = replace(
        birth_request(local_custodian),
        rows=[batch.row(3, {"name_kana": "イチ", "birth_date": "not a date"})],
        wrapped_keys={LIST_ID: batch.wrapped_keys},
    )
    template = FileRequest(
        bulk=request,
        name="x.csv",
        header=("和暦",),
        lines=[[SealedCell(3, "birth_date", "wareki")]],
        recipient=str(INSURER_KEY.to_public()),
    )
    assert refused_file(local_custodian, template) == Refusal.CANNOT_OPEN
    assert bulk_entries(local_custodian) == []
    assert [a.kind for a in local_custodian.alerts()] == ["cannot_open"]
