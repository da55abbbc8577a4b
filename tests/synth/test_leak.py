"""`yobikake synth leak`: stored people re-typed as a list broker's copy would have them,
with canaries and unrelated people among them, and a truth file that says who is who."""

import codecs
import csv
import json
import random
from collections import Counter
from dataclasses import replace
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import load_people
from tests.custody_helpers import custody_of_real_data
from yobikake.accounts.models import Organization
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.custody.protocol import CustodyUnavailable, Refusal
from yobikake.intake.models import Target
from yobikake.jp import normalize
from yobikake.synth import leak
from yobikake.synth.leak import Noise, birth_date_of, open_targets, read_leak, read_truth
from yobikake.synth.lists import HEADER_SYNONYMS, Column, generate_lists, plan_lists
from yobikake.vault.custodian import custodian
from yobikake.vault.records import IndexedFields


@pytest.fixture
def canaries(settings):
    """Three canaries in every list loaded, as outside the tests."""
    from yobikake.incidents import canaries

    settings.YOBIKAKE_CANARIES_PER_LIST = 3
    canaries.forget()
    return canaries


@pytest.fixture
def store(world, canaries):
    """Two lists of insurer A (40 and 30 people, three canaries each) on an installation
    whose organisations are all demo ones."""
    first, _ = load_people(world, count=40)
    second, _ = load_people(world, count=30, seed=2, fiscal_year=2021)
    Organization.objects.update(is_demo=True)
    return [first, second]


def make_leak(tmp_path, *args, name="leak"):
    out, truth = tmp_path / f"{name}.csv", tmp_path / f"{name}-truth.csv"
    stdout = StringIO()
    call_command(
        "synth", "leak", "--from-store", *args, "--out", out, "--truth", truth, stdout=stdout
    )
    return out, truth, stdout.getvalue()


def indexed(cells):
    """A leaked row's cells as the fields blind indexes are computed over."""
    return IndexedFields(
        name_kanji=cells.get(Column.NAME, ""),
        name_kana=cells.get(Column.KANA, ""),
        birth_date=birth_date_of(cells.get(Column.BIRTH_DATE, "")),
        phone=cells.get(Column.PHONE, ""),
        address=cells.get(Column.ADDRESS, ""),
        insured_number=cells.get(Column.INSURED_NUMBER, ""),
    )


def source_fields(person, columns=leak.DEFAULT_COLUMNS):
    """A stored person's fields, only those the leak has columns for."""
    return IndexedFields(
        name_kanji=person.name_kanji,
        name_kana=person.name_kana,
        birth_date=person.birth_date,
        phone=person.phone,
        address=person.address,
        insured_number=person.insured_number if Column.INSURED_NUMBER in columns else "",
    )


def keys(fields):
    return {
        Column.NAME: normalize.name_key(fields.name_kanji),
        Column.KANA: normalize.kana_key(fields.name_kana),
        Column.BIRTH_DATE: fields.birth_date,
        Column.PHONE: normalize.phone_key(fields.phone),
        Column.ADDRESS: normalize.address_key(fields.address),
    }


def test_a_leak_holds_the_people_asked_for_every_canary_of_their_lists_and_strangers(
    store, canaries, tmp_path
):
    out, truth_path, said = make_leak(tmp_path, "--rows", "50", "--unrelated", "0.2")
    rows, truth = read_leak(out), read_truth(truth_path)
    planted = canaries.of_lists(store)

    assert len(rows) == len(truth) == 50 + 6 + 10
    assert [t.leak_row for t in truth] == list(range(2, len(rows) + 2))
    sources = [t.target_id for t in truth if t.target_id is not None]
    assert len(sources) == len(set(sources)) == 56
    assert set(sources) <= set(Target.objects.values_list("pk", flat=True))
    assert {t.target_id for t in truth if t.canary} == planted
    unrelated = [t for t in truth if t.target_id is None]
    assert len(unrelated) == 10 and all(t.noise is None and not t.canary for t in unrelated)
    # The noise classes are dealt by their shares over the stored people's rows.
    dealt = Counter(t.noise for t in truth if t.target_id is not None)
    for noise, share in leak.DEFAULT_NOISE.items():
        assert abs(dealt[noise] - 56 * share) <= 1
    # No insured number by default: brokers rarely have it.
    assert set(rows[0]) == set(leak.DEFAULT_COLUMNS)
    assert "66 rows" in said and "6 canaries" in said


def test_canaries_none_leaves_every_canary_out(store, canaries, tmp_path):
    _, truth_path, _ = make_leak(tmp_path, "--rows", "70", "--canaries", "none")
    truth = read_truth(truth_path)
    assert not any(t.canary for t in truth)
    assert not {t.target_id for t in truth} & canaries.of_lists(store)
    # Every stored person but the canaries: all 70 of them.
    assert len({t.target_id for t in truth if t.target_id is not None}) == 70


def test_format_rows_give_their_source_s_blind_index_parts_and_typos_change_one_field(
    store, tmp_path
):
    out, truth_path, _ = make_leak(tmp_path, "--rows", "70", "--noise", "format=0.5,typo=0.5")
    rows, truth = read_leak(out), read_truth(truth_path)
    people = dict(open_targets([t.target_id for t in truth if t.target_id is not None]))
    seen = Counter()
    for cells, row in zip(rows, truth, strict=True):
        if row.target_id is None:
            continue
        leaked, source = indexed(cells), source_fields(people[row.target_id])
        seen[row.noise] += 1
        if row.noise is Noise.FORMAT:
            assert leaked.parts() == source.parts(), row
        else:
            assert row.noise is Noise.TYPO
            changed = [k for k, v in keys(leaked).items() if v != keys(source)[k]]
            assert len(changed) == 1, (row, changed)
    assert seen[Noise.FORMAT] >= 30 and seen[Noise.TYPO] >= 30


def test_dropped_rows_lack_one_cell_their_source_has(store, tmp_path):
    out, truth_path, _ = make_leak(
        tmp_path, "--rows", "20", "--noise", "dropped=1", "--canaries", "none", "--unrelated", "0"
    )
    people = dict(open_targets([t.target_id for t in read_truth(truth_path)]))
    for cells, row in zip(read_leak(out), read_truth(truth_path), strict=True):
        assert row.noise is Noise.DROPPED
        person = people[row.target_id]
        had = {
            Column.NAME: person.name_kanji,
            Column.KANA: person.name_kana,
            Column.BIRTH_DATE: person.birth_date,
            Column.SEX: person.sex,
            Column.PHONE: person.phone,
            Column.ADDRESS: person.address,
            Column.POSTAL_CODE: person.postal_code,
        }
        emptied = [column for column, text in cells.items() if not text and had[column]]
        assert len(emptied) == 1
        leaked, source = keys(indexed(cells)), keys(source_fields(person))
        changed = [k for k in leaked if leaked[k] != source[k]]
        assert changed in ([], emptied)  # sex and postal code are no keys


def test_the_insured_number_column_is_there_when_asked_for(store, tmp_path):
    columns = "name,kana,insured_number"
    out, truth_path, _ = make_leak(
        tmp_path, "--rows", "5", "--columns", columns, "--unrelated", "0"
    )
    people = dict(open_targets([t.target_id for t in read_truth(truth_path)]))
    for cells, row in zip(read_leak(out), read_truth(truth_path), strict=True):
        assert set(cells) == {Column.NAME, Column.KANA, Column.INSURED_NUMBER}
        if row.noise is Noise.FORMAT and row.target_id is not None:
            source = normalize.insured_number_key(people[row.target_id].insured_number)
            assert normalize.insured_number_key(cells[Column.INSURED_NUMBER]) == source


def test_the_same_seed_and_store_give_the_same_files(store, tmp_path):
    first = make_leak(tmp_path, "--rows", "30", "--seed", "7", name="a")
    again = make_leak(tmp_path, "--rows", "30", "--seed", "7", name="b")
    other = make_leak(tmp_path, "--rows", "30", "--seed", "8", name="c")
    assert first[0].read_bytes() == again[0].read_bytes()
    assert first[1].read_bytes() == again[1].read_bytes()
    assert first[1].read_bytes() != other[1].read_bytes()


def test_unrelated_people_are_on_no_list_and_no_stored_phone_names_them(store, tmp_path):
    out, truth_path, _ = make_leak(tmp_path, "--rows", "10", "--unrelated", "3")
    phones = {normalize.phone_key(p.phone) for _, p in open_targets()} - {""}
    strangers = [
        indexed(cells)
        for cells, row in zip(read_leak(out), read_truth(truth_path), strict=True)
        if row.target_id is None
    ]
    assert len(strangers) == 30
    assert any(fields.phone for fields in strangers)
    assert not {normalize.phone_key(fields.phone) for fields in strangers} & phones


def test_making_a_leak_is_one_audit_event_naming_no_one(store, tmp_path):
    make_leak(tmp_path, "--rows", "12", "--unrelated", "0.5", "--seed", "3")
    event = Event.objects.get(tag=AuditTag.SYNTH_LEAK)
    assert event.actor_user_id is None
    assert json.loads(event.details) == {
        "rows": 12,
        "canary_rows": 6,
        "unrelated": 6,
        "lists": 2,
        "seed": 3,
    }


def test_refused_where_any_organisation_is_real(world, canaries, tmp_path):
    load_people(world, count=5)
    Organization.objects.filter(pk=world.federation.pk).update(is_demo=True)
    with pytest.raises(CommandError, match="real organisations"):
        make_leak(tmp_path, "--rows", "3")
    assert not (tmp_path / "leak.csv").exists()
    refusal = Event.objects.get(tag=AuditTag.SYNTH_LEAK)
    assert (refusal.outcome, refusal.reason) == (Event.Outcome.DENIED, "not_a_test_leak")


def test_refused_by_a_custodian_of_real_data_even_if_every_organisation_says_demo(
    request, world, canaries, tmp_path
):
    # A custodian set up for real data (a setting in custody, out of the application's
    # reach)…
    load_people(world, count=5)
    custody_of_real_data(request)
    Organization.objects.update(is_demo=True)  # …whatever a column they can set says
    with pytest.raises(CommandError, match="custodian is not one of synthetic"):
        make_leak(tmp_path, "--rows", "3")
    assert not (tmp_path / "leak.csv").exists()
    refusal = Event.objects.get(tag=AuditTag.SYNTH_LEAK, outcome=Event.Outcome.DENIED)
    assert refusal.reason == "not_a_test_custodian"
    refused = [e for e in custodian().custodian.entries() if e.outcome == "refused"]
    assert [e.reason for e in refused] == [Refusal.NOT_SYNTHETIC]


def test_refused_clearly_when_the_custodian_cannot_be_reached(store, tmp_path, monkeypatch):
    def unreachable(request):
        raise CustodyUnavailable("stopped")

    monkeypatch.setattr(custodian(), "open_bulk", unreachable)
    with pytest.raises(CommandError, match="custodian cannot be reached"):
        make_leak(tmp_path, "--rows", "3")
    assert not (tmp_path / "leak.csv").exists()


def test_stored_people_are_opened_in_bulk_by_the_custodian_a_chunk_a_request(store):
    ids = sorted(Target.objects.values_list("pk", flat=True))
    people = list(open_targets(ids, chunk=25))
    assert [pk for pk, _ in people] == ids and all(p.name_kana for _, p in people)
    bulk = [e for e in custodian().custodian.entries() if e.kind == "open_bulk"]
    assert len(bulk) == -(-len(ids) // 25)
    assert {(e.purpose, e.holder_user_id) for e in bulk} == {("synthetic", 0)}


def test_every_synthetic_leak_raises_a_critical_alert(world, canaries, tmp_path):
    from yobikake.audit.models import Alert

    load_people(world, count=5)
    Organization.objects.update(is_demo=True)
    make_leak(tmp_path, "--rows", "3")
    assert Alert.objects.get(rule="bulk_opening").severity == Alert.Severity.CRITICAL


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "500"], "fewer than 500"),
        (["--rows", "0"], "at least one"),
        (["--rows", "5", "--noise", "format=0.5"], "add up to 1"),
        (["--rows", "5", "--noise", "smudge=1"], "CLASS=SHARE"),
        (["--rows", "5", "--columns", "name,age"], "the columns are"),
        (["--rows", "5", "--unrelated", "-1"], "must not be negative"),
    ],
)
def test_arguments_that_cannot_make_a_leak_are_refused_clearly(store, tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        make_leak(tmp_path, *args)
    assert not Event.objects.filter(tag=AuditTag.SYNTH_LEAK).exists()


def test_the_people_must_come_from_somewhere(store, tmp_path):
    with pytest.raises(CommandError, match="--from-store"):
        call_command("synth", "leak", "--rows", "3", "--out", tmp_path / "leak.csv")


def encoding_of(path):
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "cp932"
    return "utf-8"


def test_the_file_is_in_a_broker_s_encoding_under_headers_the_importer_may_not_know(
    store, tmp_path
):
    encodings, headers = set(), set()
    for seed in range(30):
        out, _, said = make_leak(tmp_path, "--rows", "3", "--seed", str(seed), name=f"s{seed}")
        encodings.add(encoding_of(out))
        assert f"({encoding_of(out)})" in said
        headers |= set(next(csv.reader(StringIO(out.read_bytes().decode(encoding_of(out))))))
        if len(encodings) == 3:
            break
    assert encodings == {"cp932", "utf-8", "utf-8-sig"}
    importer_knows = {h for synonyms in HEADER_SYNONYMS.values() for h in synonyms}
    assert headers - importer_knows


# Without the database: the re-typing itself, over people with real Gifu addresses written
# the ways the seed's insurers write them.


@pytest.fixture(scope="module")
def listed_people():
    rng = random.Random(5)
    people = []
    for generated in generate_lists(plan_lists(scale=0.002, seed=3), seed=3):
        for entry in generated.entries:
            if entry.defect is None:
                text = entry.address.text(prefecture=rng.random() < 0.5, dash=rng.choice("-－"))
                people.append(replace(entry.person, address=normalize.fold(text)))
    return people


@pytest.mark.parametrize("columns", [leak.DEFAULT_COLUMNS, leak.LEAK_COLUMNS])
def test_re_typing_keeps_or_breaks_exactly_what_its_noise_class_says(listed_people, columns):
    rng = random.Random(1)
    applied = Counter()
    for person in listed_people:
        source = source_fields(person, columns)
        for noise in Noise:
            cells, done = leak.retype(rng, person, columns, noise)
            applied[done] += 1
            leaked = indexed(cells)
            changed = [k for k, v in keys(leaked).items() if v != keys(source)[k]]
            if done is Noise.FORMAT:
                assert leaked.parts() == source.parts(), cells
            elif done is Noise.TYPO:
                assert len(changed) == 1, (changed, cells)
                assert leaked.parts().keys() == source.parts().keys()
            else:
                assert len(changed) <= 1 and sum(not text for text in cells.values()) >= 1
    # Everyone could take a typo and lose a cell.
    assert applied[Noise.TYPO] == applied[Noise.DROPPED] == len(listed_people)


def test_unrelated_people_are_re_typed_and_read_back_as_written(tmp_path):
    rng = random.Random(2)
    people = leak.unrelated_people(rng, 50)
    for person in people:
        cells, noise = leak.retype(rng, person, leak.DEFAULT_COLUMNS, None)
        assert noise is None
        assert indexed(cells).parts() == source_fields(person).parts()
