"""One contract, two custodians: the real process over mutual TLS (`HttpCustodian`) and
the in-process fake (`InProcess`) answer alike. Then what only the process can do:
be gone, and be found gone."""

import itertools
import os
import signal
import subprocess
from dataclasses import replace

import pyrage
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.custody import server_fixture
from tests.processes import children_of
from yobikake.custody.protocol import (
    ApprovalRequest,
    BulkRequest,
    CustodyRefused,
    CustodyUnavailable,
    FileRequest,
    Holder,
    Justification,
    OpenRequest,
    Purpose,
    Refusal,
    SealedCell,
    SealedRow,
    field_aad,
)
from yobikake.custody.sealing import seal_batch_key, seal_field
from yobikake.vault import custodian as vault_custodian
from yobikake.vault.custodian import HttpCustodian, InProcess

INSURER = 7
# Ids unique within the test session: the server and the fake live across tests, and
# each test's lists and holders are its own (budgets count per holder).
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = server_fixture.start(tmp_path_factory.mktemp("custodian"), staff=(INSURER,))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def in_process():
    fake = InProcess()
    server_fixture.register_staff(fake.home, (INSURER,))
    yield fake
    fake.close()


@pytest.fixture(params=["http", "in-process"])
def port(request):
    """The custodian through either adapter of the port."""
    if request.param == "in-process":
        yield request.getfixturevalue("in_process")
        return
    client = request.getfixturevalue("server").client()
    yield client
    client.close()


@pytest.fixture(scope="module")
def insurer_key(server, in_process):
    """The insurer's age identity; its public half confirmed in both custodians by the
    security officer (the server's with the real command)."""
    identity = pyrage.x25519.Identity.generate()
    in_process.custodian.confirm_recipient(INSURER, str(identity.to_public()))
    command = ["custodian", "recipient", "--home", str(server.home), str(INSURER)]
    subprocess.run([server_fixture.YOBIKAKE, *command, str(identity.to_public())], check=True)
    return identity


@pytest.fixture(scope="module")
def shared_list(server, in_process):
    """One list known to both custodians (making an RSA-3072 key takes a while)."""
    list_id = next(_ids)
    client = server.client()
    keys = {"http": client.create_list(list_id, INSURER)}
    client.close()
    keys["in-process"] = in_process.create_list(list_id, INSURER)
    return list_id, keys


def public_key_of(port, shared_list):
    list_id, keys = shared_list
    return list_id, keys["in-process" if isinstance(port, InProcess) else "http"]


def sealed_request(
    public_pem: str,
    list_id: int,
    values: dict[str, str | None],
    *,
    purpose: str = Purpose.RESEARCH,
    row_id: int = 1,
    fields: tuple[str, ...] | None = None,
) -> OpenRequest:
    """What the application sends to open one row: its batch key wrapped to the list's
    public key, and each value sealed at its place."""
    batch_key, wrapped = seal_batch_key(public_pem)
    aead = AESGCM(batch_key)
    batch_id = next(_ids)
    sealed = {
        name: None
        if value is None
        else seal_field(
            aead, field_aad("intake_target", name, row_id, list_id, INSURER), value, batch_id
        )
        for name, value in values.items()
    }
    return OpenRequest(
        justification=Justification(
            holder=Holder(user_id=next(_ids), role="researcher"),
            purpose=purpose,
            grant_id=next(_ids),
            insurer_id=INSURER,
            list_id=list_id,
            table="intake_target",
            row_id=row_id,
            fields=fields or tuple(values),
        ),
        wrapped_keys={batch_id: wrapped},
        sealed=sealed,
    )


def bulk_request(
    public_pem: str,
    list_id: int,
    rows: dict[int, dict[str, str | None]],
    *,
    purpose: str = Purpose.EXPORT,
) -> BulkRequest:
    """What the application sends to open an export's rows: each row sealed under a batch
    key of its own (as values researched after the import are)."""
    sealed_rows, keys = [], {}
    for row_id, values in rows.items():
        single = sealed_request(public_pem, list_id, values, row_id=row_id)
        keys.update(single.wrapped_keys)
        sealed_rows.append(SealedRow(list_id, INSURER, "intake_target", row_id, single.sealed))
    return BulkRequest(
        holder=Holder(user_id=next(_ids), role="supervisor"),
        purpose=purpose,
        approval_id=next(_ids),
        insurer_id=INSURER,
        fields=tuple(next(iter(rows.values()))),
        rows=sealed_rows,
        wrapped_keys={list_id: keys},
    )


def test_a_list_s_public_key_is_rsa_and_stays_the_same(port, shared_list):
    list_id, public_pem = public_key_of(port, shared_list)
    key = load_pem_public_key(public_pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 3072
    assert port.public_key(list_id) == public_pem
    assert port.create_list(list_id, INSURER) == public_pem


def test_what_the_application_seals_the_custodian_opens(port, shared_list):
    list_id, public_pem = public_key_of(port, shared_list)
    values = {"name_kanji": "試験 太郎", "name_kana": "シケン タロウ", "address": None}
    opened = port.open(sealed_request(public_pem, list_id, values, row_id=11))
    assert opened.values == {"name_kanji": "試験 太郎", "name_kana": "シケン タロウ", "address": ""}
    assert opened.ledger_seq > 0


def test_each_open_is_a_new_ledger_entry(port, shared_list):
    list_id, public_pem = public_key_of(port, shared_list)
    first = port.open(sealed_request(public_pem, list_id, {"name_kana": "イチ"}, row_id=12))
    second = port.open(sealed_request(public_pem, list_id, {"name_kana": "ニ"}, row_id=13))
    assert second.ledger_seq > first.ledger_seq
    assert (first.values, second.values) == ({"name_kana": "イチ"}, {"name_kana": "ニ"})


def test_a_value_that_looks_like_encoded_bytes_comes_back_as_text(port, shared_list):
    list_id, public_pem = public_key_of(port, shared_list)
    request = sealed_request(public_pem, list_id, {"address": "b64:AAAA"}, row_id=17)
    assert port.open(request).values == {"address": "b64:AAAA"}


def test_a_field_the_purpose_may_not_open_is_refused_with_its_code(port, shared_list):
    list_id, public_pem = public_key_of(port, shared_list)
    request = sealed_request(public_pem, list_id, {"insured_number": "12345678"}, row_id=14)
    with pytest.raises(CustodyRefused) as refused:
        port.open(request)
    assert refused.value.code == Refusal.FIELDS


def test_a_value_moved_to_another_row_does_not_open(port, shared_list):
    list_id, public_pem = public_key_of(port, shared_list)
    request = sealed_request(public_pem, list_id, {"name_kana": "ヨソ"}, row_id=15)
    moved = OpenRequest(
        justification=Justification(**{**request.justification.__dict__, "row_id": 16}),
        wrapped_keys=request.wrapped_keys,
        sealed=request.sealed,
    )
    with pytest.raises(CustodyRefused) as refused:
        port.open(moved)
    assert refused.value.code == Refusal.CANNOT_OPEN


def export_file(request: BulkRequest, *, recipient: str) -> FileRequest:
    """A file of one line per row: a literal that looks like protocol's bytes, its id
    and its fields."""
    return FileRequest(
        bulk=request,
        name="export.csv",
        header=("literal", "row", *request.fields),
        lines=[
            ["b64:AAAA", str(row.row_id), *(SealedCell(row.row_id, f) for f in request.fields)]
            for row in request.rows
        ],
        recipient=recipient,
    )


def test_an_export_s_file_comes_back_encrypted_to_the_insurer_only(port, shared_list, insurer_key):
    list_id, public_pem = public_key_of(port, shared_list)
    rows: dict[int, dict[str, str | None]] = {
        101: {"name_kanji": "試験 一郎", "insured_number": "b64:AAAA"},
        102: {"name_kanji": "試験 二郎", "insured_number": None},
    }
    insurer = insurer_key
    request = export_file(
        bulk_request(public_pem, list_id, rows), recipient=str(insurer.to_public())
    )
    produced = port.produce_file(request)
    assert produced.name == "export.csv.age" and produced.ledger_seq > 0
    assert produced.data.startswith(b"age-encryption.org/v1\n")
    assert "試験".encode() not in produced.data
    text = pyrage.decrypt(produced.data, [insurer]).decode()
    assert text == (
        "\ufeffliteral,row,name_kanji,insured_number\r\n"
        "b64:AAAA,101,試験 一郎,b64:AAAA\r\n"
        "b64:AAAA,102,試験 二郎,\r\n"
    )


def test_an_export_is_refused_with_its_code(port, shared_list, insurer_key):
    list_id, public_pem = public_key_of(port, shared_list)
    rows: dict[int, dict[str, str | None]] = {103: {"name_kana": "シンセ"}}
    recipient = str(insurer_key.to_public())
    with pytest.raises(CustodyRefused) as refused:
        port.open_bulk(bulk_request(public_pem, list_id, rows))
    assert refused.value.code == Refusal.BAD_REQUEST  # never in the clear
    with pytest.raises(CustodyRefused) as refused:
        port.open_bulk(bulk_request(public_pem, list_id, rows, purpose=Purpose.SYNTHETIC))
    assert refused.value.code == Refusal.NOT_SYNTHETIC
    missing_key = bulk_request(public_pem, list_id, rows)
    without_keys = BulkRequest(**{**missing_key.__dict__, "wrapped_keys": {}})
    with pytest.raises(CustodyRefused) as refused:
        port.produce_file(export_file(without_keys, recipient=recipient))
    assert refused.value.code == Refusal.BAD_REQUEST
    overreaching = BulkRequest(**{**missing_key.__dict__, "fields": ("name_kana", "note")})
    with pytest.raises(CustodyRefused) as refused:
        port.produce_file(export_file(overreaching, recipient=recipient))
    assert refused.value.code == Refusal.FIELDS
    insiders = str(pyrage.x25519.Identity.generate().to_public())
    with pytest.raises(CustodyRefused) as refused:
        port.produce_file(export_file(missing_key, recipient=insiders))
    assert refused.value.code == Refusal.RECIPIENT


def test_a_synthetic_fake_opens_synthetic_organisations_in_bulk():
    fake = InProcess(synthetic=True)
    try:
        list_id = next(_ids)
        public_pem = fake.create_list(list_id, INSURER)
        rows: dict[int, dict[str, str | None]] = {1: {"phone": "058-000-0000"}}
        request = bulk_request(public_pem, list_id, rows, purpose=Purpose.SYNTHETIC)
        assert fake.open_bulk(request).values == {1: {"phone": "058-000-0000"}}
    finally:
        fake.close()


def test_a_list_never_made_is_unknown(port):
    with pytest.raises(CustodyRefused) as refused:
        port.public_key(next(_ids) + 10_000)
    assert refused.value.code == Refusal.UNKNOWN_LIST


def test_canaries_registered_are_left_out_of_campaigns(port):
    list_id = next(_ids)
    port.create_list(list_id, INSURER)
    port.register_canaries(list_id, [5, 9])
    assert port.leave_out(list_id, campaign_id=3) == frozenset({5, 9})
    with pytest.raises(CustodyRefused) as refused:
        port.register_canaries(list_id, [6])
    assert refused.value.code == Refusal.CANARIES_REGISTERED
    assert port.leave_out(list_id, campaign_id=4) == frozenset({5, 9})


def test_a_shredded_list_opens_nothing_and_its_certificate_names_it(port):
    list_id = next(_ids)
    public_pem = port.create_list(list_id, INSURER)
    request = sealed_request(public_pem, list_id, {"name_kana": "シュレッド"}, row_id=1)
    certificate = port.shred(list_id)
    assert (certificate.list_id, certificate.insurer_id) == (list_id, INSURER)
    assert certificate.signature and certificate.key_fingerprint and certificate.destroyed_at
    with pytest.raises(CustodyRefused) as refused:
        port.open(request)
    assert refused.value.code == Refusal.SHREDDED
    with pytest.raises(CustodyRefused) as refused:
        port.create_list(list_id, INSURER)
    assert refused.value.code == Refusal.SHREDDED


def test_a_login_reported_binds_its_session_and_one_never_reported_is_alerted(port):
    user = next(_ids)
    session, forged = (f"sha256:{os.urandom(28).hex()}" for _ in range(2))
    port.record_login(user, next(_ids), session)
    assert port.check_session(user, None, session) is True
    assert port.check_session(user, 5, forged) is False
    [alert] = [a for a in port.alerts() if a.holder_user_id == user]
    assert alert.kind == "session_unbound" and alert.severity == "critical"
    assert alert.label.startswith("ログインの記録がないセッション")
    with pytest.raises(CustodyRefused, match="digest"):
        port.record_login(user, 1, "not a digest")


def test_heartbeats_are_taken_from_known_sources_only(port):
    port.heartbeat("application")
    port.heartbeat("retention")
    with pytest.raises(CustodyRefused, match="source"):
        port.heartbeat("anything")


def test_a_stopped_custodian_is_unavailable_and_nothing_opens(tmp_path):
    running = server_fixture.start(tmp_path, staff=(INSURER,))
    client = running.client()
    list_id = next(_ids)
    public_pem = client.create_list(list_id, INSURER)
    request = sealed_request(public_pem, list_id, {"name_kana": "テイシ"})
    assert client.open(request).values == {"name_kana": "テイシ"}
    # The arbiter and its worker, as a service manager stops a unit whose process died;
    # the arbiter frozen first, so that it cannot fork a new worker meanwhile.
    os.kill(running.process.pid, signal.SIGSTOP)
    for pid in children_of(running.process.pid):
        os.kill(pid, signal.SIGKILL)
    running.process.kill()
    running.process.wait()
    with pytest.raises(CustodyUnavailable):
        client.open(sealed_request(public_pem, list_id, {"name_kana": "テイシ"}))
    with pytest.raises(CustodyUnavailable):
        client.public_key(list_id)


def test_a_server_error_is_unavailable_too(server, monkeypatch):
    # Whatever is not an answer or a refusal opens nothing and is not taken for a refusal.
    client = server.client()
    monkeypatch.setattr(client, "url", server.url + "/v2")
    with pytest.raises(CustodyUnavailable):
        client.public_key(1)


def test_without_its_client_certificate_the_application_has_no_custodian(tmp_path):
    with pytest.raises(CustodyUnavailable, match="yobikake custodian init"):
        HttpCustodian("https://127.0.0.1:1", tmp_path / "nothing")


def test_the_configured_custodian_is_one_per_process(server, settings):
    settings.YOBIKAKE_CUSTODIAN_URL = server.url
    settings.YOBIKAKE_CUSTODIAN_CLIENT_DIR = server.client_dir
    configured = vault_custodian.custodian()
    assert isinstance(configured, HttpCustodian)
    assert configured is vault_custodian.custodian()
    assert configured.url == server.url
    assert configured.health()["status"] == "ok"


def test_an_approval_filed_through_either_adapter_waits_for_custody_and_a_revocation_ends_a_role(
    port, shared_list
):
    list_id, public_pem = public_key_of(port, shared_list)
    newcomer = 10_000 + next(_ids)  # outside the staff the registries hold
    filed = port.file_approval(
        ApprovalRequest(
            kind="role",
            holder_user_id=newcomer,
            holder_name="newcomer",
            role="researcher",
            insurer_id=None,
            until="2099-01-01T00:00:00+00:00",
            summary="Researcher — CC",
        )
    )
    assert "/approve/" in filed.url
    assert port.approval_state(filed.approval_id).state == "pending"
    request = sealed_request(public_pem, list_id, {"name_kana": "シンジン"})
    request = replace(
        request,
        justification=replace(
            request.justification, holder=Holder(user_id=newcomer, role="researcher")
        ),
    )
    with pytest.raises(CustodyRefused) as refused:
        port.open(request)
    assert refused.value.code == Refusal.HOLDER_UNKNOWN
    with pytest.raises(CustodyRefused) as refused:
        port.approval_state(10**9)
    assert refused.value.code == Refusal.BAD_REQUEST


def test_a_revocation_through_either_adapter_ends_the_role_in_custody(port, shared_list):
    list_id, public_pem = public_key_of(port, shared_list)
    request = sealed_request(public_pem, list_id, {"name_kana": "トリケシ"})
    assert port.open(request).values == {"name_kana": "トリケシ"}
    assert port.revoke_holder(request.justification.holder.user_id, "researcher") == 1
    again = sealed_request(public_pem, list_id, {"name_kana": "トリケシ"})
    again = replace(
        again, justification=replace(again.justification, holder=request.justification.holder)
    )
    with pytest.raises(CustodyRefused) as refused:
        port.open(again)
    assert refused.value.code == Refusal.HOLDER_UNKNOWN
