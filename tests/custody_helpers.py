"""Opening stored rows in tests, as only the custodian can: a bulk open for synthetic
organisations (the tests' custodian is synthetic, tests/conftest.py `custody`), so a
test can check what an importer stored without a grant or a budget."""

from collections import defaultdict
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yobikake.custody import sealing
from yobikake.custody.protocol import BulkRequest, Holder, SealedRow, field_aad
from yobikake.intake.models import Target
from yobikake.vault import batches
from yobikake.vault.custodian import custodian

ALL_FIELDS = tuple(Target.SEALED_FIELDS)


def open_rows(targets: Iterable[Target], fields: Sequence[str] = ALL_FIELDS) -> dict[int, dict]:
    """{target id: {field: value}} for `targets` (of one insurer)."""
    targets = list(targets)
    table = Target._meta.db_table
    return open_sealed(
        [
            SealedRow(
                list_id=t.target_list_id,
                insurer_id=t.insurer_id,
                table=table,
                row_id=t.pk,
                sealed={f: bytes(v) if (v := getattr(t, f)) else None for f in fields},
            )
            for t in targets
        ],
        fields,
    )


def open_sealed(rows: list[SealedRow], fields: Sequence[str]) -> dict[int, dict]:
    """{row id: {field: value}} for sealed rows of any table (of one insurer)."""
    if not rows:
        return {}
    by_list: dict[int, list[bytes | None]] = defaultdict(list)
    for row in rows:
        by_list[row.list_id] += row.sealed.values()
    opened = custodian().open_bulk(
        BulkRequest(
            holder=Holder(user_id=1, role="test"),
            purpose="synthetic",
            approval_id=1,
            insurer_id=rows[0].insurer_id,
            fields=tuple(fields),
            rows=rows,
            wrapped_keys=batches.wrapped_keys_by_list(by_list),
        )
    )
    return {int(row_id): dict(values) for row_id, values in opened.values.items()}


def open_row(target: Target, fields: Sequence[str] = ALL_FIELDS) -> dict:
    return open_rows([target], fields)[target.pk]


def shredded_in_custody(target_list) -> bool:
    """Whether custody has destroyed the list's private key (its keyring no longer holds
    it) and the list's receipt is signed by the custody key."""
    import pytest

    from yobikake.custody.core import verify_certificate
    from yobikake.custody.keyring import KeyGone
    from yobikake.custody.protocol import DeletionCertificate

    inner = custodian().custodian  # the tests' in-process custodian
    with pytest.raises(KeyGone):
        inner.keyring.public_pem(target_list.pk)
    target_list.refresh_from_db()
    receipt = target_list.custody_receipt
    certificate = DeletionCertificate(
        list_id=target_list.pk,
        insurer_id=target_list.insurer_id,
        key_fingerprint=receipt["key_fingerprint"],
        destroyed_at=receipt["destroyed_at"],
        signature=bytes.fromhex(receipt["signature"]),
    )
    return verify_certificate(certificate, inner.ledger.public_pem())


def open_in_custody(target_list, table: str, column: str, row_id: int, sealed) -> str:
    """A value no purpose opens (a call note), opened as the custodian would, with the
    tests' in-process custodian's own keyring."""
    sealed = bytes(sealed)
    [wrapped] = batches.wrapped_keys(target_list.pk, [sealed]).values()
    key = custodian().custodian.keyring.decrypt(target_list.pk, wrapped)
    aad = field_aad(table, column, row_id, target_list.pk, target_list.insurer_id)
    return sealing.open_field(AESGCM(key), aad, sealed)


def custody_of_real_data(request):
    """The test's custodian (tests/conftest.py's `custody`) on the same home, set up for
    real data: it refuses every synthetic bulk open. For the rest of the test
    (`request`: the test's)."""
    import json

    from yobikake.custody.config import CONFIG_FILE
    from yobikake.vault import custodian as port

    home = request.getfixturevalue("custody").home
    path = home / CONFIG_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), "synthetic": False}))
    real = port.InProcess(home)
    request.addfinalizer(real.close)
    request.getfixturevalue("monkeypatch").setattr(port, "_build", lambda *args: real)
    return real


def custodian_process(request) -> dict[str, str]:
    """A real custodian process (tests/custody/server_fixture.py) for a test that starts
    processes of its own (a task worker, a command): the test reaches it through the
    port, as they will with the environment returned. For the rest of the test."""
    from tests.custody.server_fixture import start
    from yobikake.vault import custodian as port

    server = start(request.getfixturevalue("tmp_path") / "custodian-process")
    request.addfinalizer(server.stop)
    client = server.client()
    request.addfinalizer(client.close)
    request.getfixturevalue("monkeypatch").setattr(port, "_build", lambda *args: client)
    return {
        "YOBIKAKE_CUSTODIAN_URL": server.url,
        "YOBIKAKE_CUSTODIAN_CLIENT_DIR": str(server.client_dir),
    }
