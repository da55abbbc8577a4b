"""A custody home of the test's own, a clock the test moves, and sealing as the
application does it (custody.sealing), so that every test opens what a real importer
would have stored."""

import itertools
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.custody.server_fixture import register_staff
from tests.pii import SYNTHETIC_PERSONAL_DATA
from yobikake.custody import sealing
from yobikake.custody.config import Config
from yobikake.custody.core import Custodian
from yobikake.custody.keyring import write_private
from yobikake.custody.protocol import (
    Holder,
    Justification,
    OpenRequest,
    Purpose,
    SealedRow,
    field_aad,
)

LIST_ID = 11
INSURER_ID = 21
TABLE = "intake_person"
# Monday 2026-12-07 12:00 in Tokyo: within calling hours.
MONDAY_NOON_JST = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
PERSON = {
    "name_kanji": SYNTHETIC_PERSONAL_DATA[0],
    "name_kana": SYNTHETIC_PERSONAL_DATA[1],
    "phone": SYNTHETIC_PERSONAL_DATA[3],
    "address": SYNTHETIC_PERSONAL_DATA[6],
    "postal_code": SYNTHETIC_PERSONAL_DATA[7],
    "insured_number": SYNTHETIC_PERSONAL_DATA[9],
}
CALL_FIELDS = ("name_kanji", "name_kana", "phone")
_batch_ids = itertools.count(1)


@dataclass
class Clock:
    now: datetime = MONDAY_NOON_JST

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Batch:
    """One imported batch: its id, its key wrapped to the list's public key, and its
    rows."""

    list_id: int
    insurer_id: int
    batch_id: int
    wrapped: bytes
    aead: AESGCM = field(repr=False)

    @property
    def wrapped_keys(self) -> dict[int, bytes]:
        return {self.batch_id: self.wrapped}

    def seal(self, row_id: int, values: dict[str, str | None], table: str = TABLE):
        return {
            name: None
            if value is None
            else sealing.seal_field(
                self.aead,
                field_aad(table, name, row_id, self.list_id, self.insurer_id),
                value,
                self.batch_id,
            )
            for name, value in values.items()
        }

    def row(self, row_id: int, values: dict[str, str | None]) -> SealedRow:
        return SealedRow(self.list_id, self.insurer_id, TABLE, row_id, self.seal(row_id, values))

    def request(
        self,
        row_id: int = 1,
        *,
        purpose: str = Purpose.CALL,
        fields: tuple[str, ...] = CALL_FIELDS,
        user_id: int = 7,
        role: str = "operator",
        values: dict[str, str | None] | None = None,
        grant_id: int = 3,
    ) -> OpenRequest:
        justification = Justification(
            holder=Holder(user_id=user_id, role=role),
            purpose=purpose,
            grant_id=grant_id,
            insurer_id=self.insurer_id,
            list_id=self.list_id,
            table=TABLE,
            row_id=row_id,
            fields=fields,
        )
        values = values if values is not None else {name: PERSON[name] for name in fields}
        return OpenRequest(justification, self.wrapped_keys, self.seal(row_id, values))


def new_batch(custodian: Custodian, list_id: int = LIST_ID, insurer_id: int = INSURER_ID):
    """A batch sealed as the importer seals one (or as a value sealed later is, under a
    key of its own): a fresh key under a batch id of its own."""
    public_pem = custodian.create_list(list_id, insurer_id)
    key, wrapped = sealing.seal_batch_key(public_pem)
    return Batch(list_id, insurer_id, next(_batch_ids), wrapped, AESGCM(key))


def configure(home: Path, **settings) -> None:
    """Change custody.json, as the security officer would."""
    path = home / "custody.json"
    values = json.loads(path.read_text())
    values.update(settings)
    path.write_text(json.dumps(values))


@pytest.fixture
def clock():
    return Clock()


# Holders outside the tests' registries (tests/custody/test_holders.py); every other
# account that asks has its roles confirmed (server_fixture.register_staff).
UNKNOWN_HOLDER = 5000


@pytest.fixture
def home(tmp_path):
    home = Config.init(tmp_path / "custody").home
    register_staff(home, insurers=(INSURER_ID, INSURER_ID + 1))
    return home


# The insurer's key pair, as it would make with age-keygen; custody has the public half.
INSURER_KEY = pyrage.x25519.Identity.generate()


@pytest.fixture
def insurer_key_confirmed(home):
    """INSURER_ID's age key, confirmed in custody by the security officer: export files
    of that insurer may go to it."""
    officer = Custodian(home)
    try:
        officer.confirm_recipient(INSURER_ID, str(INSURER_KEY.to_public()))
    finally:
        officer.close()


def openbao_settings(home: Path, server) -> dict:
    """A transit mount of this test's own on the session's OpenBao (list ids repeat from
    test to test), and the token in a 0600 file in the custody home."""
    mount = f"transit-{secrets.token_hex(4)}"
    server.client().sys.enable_secrets_engine("transit", path=mount)
    write_private(home / "bao-token", server.token.encode())
    return {"kind": "openbao", "addr": server.addr, "mount": mount, "token_file": "bao-token"}


@pytest.fixture(params=["local", "openbao"])
def keyring_kind(request, home):
    """Each test that takes this runs on the local keyring and on a real OpenBao."""
    if request.param == "openbao":
        configure(home, keyring=openbao_settings(home, request.getfixturevalue("openbao")))
    return request.param


@pytest.fixture
def custodian(home, clock, keyring_kind):
    custodian = Custodian(home, clock=clock)
    yield custodian
    custodian.close()


@pytest.fixture
def local_custodian(home, clock):
    """For the rules that do not depend on the keyring: the local one only."""
    custodian = Custodian(home, clock=clock)
    yield custodian
    custodian.close()
