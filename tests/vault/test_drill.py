"""The drills of the vault issue, on the local keyring and on OpenBao (and, through
`make test`, on SQLite and PostgreSQL): what a database administrator who copies the
database, or a backup, gets."""

import sqlite3
import subprocess

import pytest
from django.db import connection

from tests.conftest import load_people
from tests.pii import person_values
from yobikake.audit.models import Event
from yobikake.audit.tags import AuditTag
from yobikake.custody.protocol import BulkRequest, CustodyRefused, Holder, Refusal, SealedRow
from yobikake.intake.models import Target, TargetList
from yobikake.vault.custodian import custodian
from yobikake.vault.services import shred_list


def database_copy() -> bytes:
    """What someone with the database server's files or a backup holds: the SQLite file
    (with its write-ahead log), or a `pg_dump`."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        connection.close()  # checkpoint nothing away: read the log as it stands, too
        path = str(settings["NAME"])
        chunks = []
        for suffix in ("", "-wal"):
            try:
                with open(path + suffix, "rb") as f:
                    chunks.append(f.read())
            except FileNotFoundError:
                pass
        return b"".join(chunks)
    dump = subprocess.run(
        [
            "pg_dump",
            "--no-owner",
            "-h",
            settings["HOST"] or "127.0.0.1",
            "-p",
            str(settings["PORT"] or 5432),
            "-U",
            settings["USER"] or "postgres",
            settings["NAME"],
        ],
        check=True,
        capture_output=True,
    )
    return dump.stdout


@pytest.mark.django_db(transaction=True)
def test_a_copy_of_the_database_holds_none_of_the_people(key_profile, world):
    _, people = load_people(world, count=60, seed=7)
    copy = database_copy()
    assert len(copy) > 10_000
    values = {v for person in people for v in person_values(person)}
    assert len(values) > 200
    # The scan can fail: a value stored in the clear is found (checked on an insurer name).
    assert "テスト市A".encode() in copy
    found = sorted(v for v in values if v.encode() in copy)
    assert not found, f"personal data in the database copy: {found[:5]}"


class Backup:
    """A real backup of the test database taken now: SQLite's online backup, or a
    `pg_dump` restored into a scratch database. `rows(sql)` reads from it."""

    def __init__(self, tmp_path):
        self.settings = connection.settings_dict
        connection.close()
        if connection.vendor == "sqlite":
            self.path = tmp_path / "backup.sqlite3"
            with sqlite3.connect(self.settings["NAME"]) as live, sqlite3.connect(self.path) as copy:
                live.backup(copy)
            return
        self.name = f"{self.settings['NAME']}_backup"
        dump = database_copy()
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}"', f'CREATE DATABASE "{self.name}"')
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", *self._where(), self.name],
            input=dump,
            check=True,
            capture_output=True,
        )

    def _where(self):
        s = self.settings
        return ["-h", s["HOST"] or "127.0.0.1", "-p", str(s["PORT"] or 5432), "-U", s["USER"]]

    def _admin(self, *statements):
        import psycopg

        s = self.settings
        with psycopg.connect(
            host=s["HOST"], port=s["PORT"], user=s["USER"], dbname="postgres", autocommit=True
        ) as admin:
            for statement in statements:
                admin.execute(statement)

    def rows(self, sql, params):
        if connection.vendor == "sqlite":
            with sqlite3.connect(self.path) as db:
                return db.execute(sql, params).fetchall()
        import psycopg

        s = self.settings
        with psycopg.connect(
            host=s["HOST"], port=s["PORT"], user=s["USER"], dbname=self.name
        ) as db:
            return db.execute(sql.replace("?", "%s"), params).fetchall()

    def drop(self):
        if connection.vendor != "sqlite":
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}"')

    def batches_and_names(self, target_list) -> tuple[dict[int, bytes], dict[int, bytes]]:
        """The list's wrapped batch keys and its people's sealed names, as the backup holds
        them."""
        wrapped = self.rows(
            "SELECT id, wrapped_key FROM intake_sealedbatch WHERE target_list_id = ?",
            [target_list.pk],
        )
        names = self.rows(
            "SELECT id, name_kana FROM intake_target WHERE target_list_id = ?", [target_list.pk]
        )
        return {pk: bytes(w) for pk, w in wrapped}, {pk: bytes(v) for pk, v in names}


def open_backup(target_list, wrapped: dict[int, bytes], names: dict[int, bytes]) -> set[str]:
    """Everything the custodian would do for someone holding a backup (and the
    application's credentials): a bulk open of its sealed names."""
    request = BulkRequest(
        holder=Holder(user_id=1, role="test"),
        purpose="synthetic",
        approval_id=1,
        insurer_id=target_list.insurer_id,
        fields=("name_kana",),
        rows=[
            SealedRow(target_list.pk, target_list.insurer_id, "intake_target", pk, {"name_kana": v})
            for pk, v in names.items()
        ],
        wrapped_keys={target_list.pk: wrapped},
    )
    return {values["name_kana"] for values in custodian().open_bulk(request).values.values()}


@pytest.mark.django_db(transaction=True)
def test_after_shredding_a_backup_taken_before_does_not_open(key_profile, world, tmp_path):
    target_list, people = load_people(world, count=10, seed=3)
    backup = Backup(tmp_path)
    try:
        wrapped, names = backup.batches_and_names(target_list)
    finally:
        backup.drop()
    # Before shredding, the backup opens with the key service's help (the control).
    assert open_backup(target_list, wrapped, names) == {p.name_kana for p in people}
    shred_list(actor=world.security, target_list=target_list)
    with pytest.raises(CustodyRefused) as refused:
        open_backup(target_list, wrapped, names)
    assert refused.value.code == Refusal.SHREDDED
    target_list.refresh_from_db()
    assert target_list.state == TargetList.State.SHREDDED
    assert not Target.objects.filter(target_list=target_list).exists()
    assert target_list.row_count == 10  # counts survive
    assert sum(target_list.aggregates["sex_age_band"].values()) == 10
    event = Event.objects.get(tag=AuditTag.LIST_SHRED)
    assert (event.actor_user_id, event.list_id) == (world.security.pk, target_list.pk)
