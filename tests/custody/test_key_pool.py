"""Key pairs made ahead of need: the local keyring's pool, which a list's creation takes
from instead of waiting while an RSA-3072 key is made, and which a background thread
keeps filled. A pooled key never leaves custody, goes to one list only, and is recorded
in the ledger when a list takes it."""

import stat
import threading
import time

import pytest

from tests.custody.conftest import INSURER_ID, configure, openbao_settings
from yobikake.custody import sealing
from yobikake.custody.config import Config, ConfigError
from yobikake.custody.core import Custodian
from yobikake.custody.keyring import POOL_DIR, LocalKeyring, fingerprint_of
from yobikake.custody.ledger import Kind


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def pooled_fingerprints(keyring: LocalKeyring, keys_dir) -> set[str]:
    """The public fingerprints of the pool's keys, read as the keyring reads a list's."""
    found = set()
    for n, path in enumerate(sorted((keys_dir / POOL_DIR).glob("key-*.pem")), 1):
        probe = keys_dir / f"list-{900_000 + n}.pem"
        probe.hardlink_to(path)
        try:
            found.add(keyring.fingerprint(900_000 + n))
        finally:
            probe.unlink()
    return found


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_list_takes_a_pooled_key_pair_and_each_goes_to_one_list(home):
    keys_dir = Config.load(home).keys_dir
    keyring = LocalKeyring(keys_dir)
    keyring.add_to_pool()
    keyring.add_to_pool()
    assert keyring.pooled() == 2
    assert mode(keys_dir / POOL_DIR) == 0o700
    assert all(mode(p) == 0o600 for p in (keys_dir / POOL_DIR).iterdir())
    pool = pooled_fingerprints(LocalKeyring(keys_dir), keys_dir)

    first = fingerprint_of(keyring.create(1))
    assert first in pool and keyring.pooled() == 1
    assert fingerprint_of(keyring.create(1)) == first and keyring.pooled() == 1  # kept
    second = fingerprint_of(keyring.create(2))
    assert second in pool and second != first and keyring.pooled() == 0
    third = fingerprint_of(keyring.create(3))  # the pool is empty: made on the spot
    assert third not in pool and keyring.pooled() == 0
    assert mode(keys_dir / "list-1.pem") == 0o600
    # The pooled key opens what is sealed to the public key it gave.
    batch_key, wrapped = sealing.seal_batch_key(keyring.public_pem(2))
    assert keyring.decrypt(2, wrapped) == batch_key


def test_lists_created_at_once_each_get_their_own_key_and_one_list_one_key(home):
    keys_dir = Config.load(home).keys_dir
    keyring = LocalKeyring(keys_dir)
    for _ in range(6):
        keyring.add_to_pool()
    results: dict[tuple[int, int], str] = {}

    def create(thread: int, list_id: int) -> None:
        # A keyring per thread, as two processes on one home would have.
        results[(thread, list_id)] = LocalKeyring(keys_dir).create(list_id)

    threads = [
        threading.Thread(target=create, args=(n, list_id))
        for n in range(3)
        for list_id in (1, 2, 3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_list = {
        list_id: {pem for (_, i), pem in results.items() if i == list_id} for list_id in (1, 2, 3)
    }
    assert all(len(pems) == 1 for pems in by_list.values())  # one key per list
    assert len({next(iter(p)) for p in by_list.values()}) == 3  # no key shared
    assert keyring.pooled() == 3  # three taken; a claim that lost put its key back
    assert not [p for p in (keys_dir / POOL_DIR).iterdir() if p.name.startswith(".")]


def test_the_custodian_keeps_its_pool_filled_and_records_the_list_s_key(home, clock):
    configure(home, key_pool=2)
    custodian = Custodian(home, clock=clock)
    try:
        assert custodian.key_pool() == {"ready": 0, "size": 2}
        assert custodian.pool is not None
        custodian.pool.quiet = 0.0
        custodian.start_key_pool()
        wait_for(lambda: custodian.key_pool() == {"ready": 2, "size": 2})
        keys_dir = custodian.config.keys_dir
        pool = pooled_fingerprints(LocalKeyring(keys_dir), keys_dir)

        public = custodian.create_list(7, INSURER_ID)

        key = custodian.ledger.list_key(7)
        assert key is not None and key.fingerprint == fingerprint_of(public) and key.active
        assert key.fingerprint in pool
        created = [e for e in custodian.entries() if e.kind == Kind.CREATE_LIST]
        assert [(e.list_id, e.insurer_id, e.outcome) for e in created] == [
            (7, INSURER_ID, "created")
        ]
        wait_for(lambda: custodian.key_pool() == {"ready": 2, "size": 2})  # refilled
        assert key.fingerprint not in pooled_fingerprints(LocalKeyring(keys_dir), keys_dir)
    finally:
        custodian.close()


def test_the_pool_refills_once_lists_stop_taking_keys_or_it_runs_low(home, clock):
    """An import makes lists in a run: keys are made after it, not beside it."""
    configure(home, key_pool=16)
    custodian = Custodian(home, clock=clock)
    try:
        assert custodian.pool is not None
        custodian.pool.quiet = 3.0
        custodian.start_key_pool()
        wait_for(lambda: custodian.key_pool() == {"ready": 16, "size": 16})
        for list_id in range(1, 9):
            custodian.create_list(list_id, INSURER_ID)
        time.sleep(0.5)
        assert custodian.key_pool() == {"ready": 8, "size": 16}  # still quiet
        wait_for(lambda: custodian.key_pool() == {"ready": 16, "size": 16})
        for list_id in range(9, 24):  # one left: fewer than an eighth
            custodian.create_list(list_id, INSURER_ID)
        wait_for(lambda: custodian.key_pool()["ready"] > 1, timeout=2.8)  # type: ignore[index]
    finally:
        custodian.close()


def test_a_custodian_waiting_for_quiet_to_refill_stops_at_once(home, clock):
    configure(home, key_pool=2)
    custodian = Custodian(home, clock=clock)
    assert custodian.pool is not None
    custodian.pool.quiet = 60.0
    custodian.start_key_pool()
    wait_for(lambda: custodian.key_pool() == {"ready": 2, "size": 2})
    custodian.create_list(1, INSURER_ID)  # the pool now waits 60 s of quiet
    time.sleep(0.2)
    closing = threading.Thread(target=custodian.close)
    closing.start()
    closing.join(timeout=5)
    assert not closing.is_alive(), "the pool's thread kept the custodian from stopping"


def test_a_shredded_list_s_pooled_key_is_destroyed_like_any_other(home, clock):
    configure(home, key_pool=1)
    custodian = Custodian(home, clock=clock)
    try:
        custodian.keyring.add_to_pool()  # type: ignore[attr-defined]
        public = custodian.create_list(8, INSURER_ID)
        certificate = custodian.shred(8)
        assert certificate.key_fingerprint == fingerprint_of(public)
        assert not (custodian.config.keys_dir / "list-8.pem").exists()
    finally:
        custodian.close()


def test_no_pool_when_it_is_zero_or_the_keys_are_in_openbao(home, clock, openbao):
    configure(home, key_pool=0)
    custodian = Custodian(home, clock=clock)
    try:
        assert custodian.key_pool() is None
        custodian.start_key_pool()
        assert fingerprint_of(custodian.create_list(1, INSURER_ID))
    finally:
        custodian.close()
    configure(home, key_pool=4, keyring=openbao_settings(home, openbao))
    custodian = Custodian(home, clock=clock)
    try:
        assert custodian.key_pool() is None  # OpenBao names each transit key by its list
        assert fingerprint_of(custodian.create_list(2, INSURER_ID))
        assert not (custodian.config.keys_dir / POOL_DIR).exists()
    finally:
        custodian.close()


@pytest.mark.parametrize("value", [-1, 1.5, True, "4"])
def test_the_pool_size_is_a_whole_number(home, value):
    configure(home, key_pool=value)
    with pytest.raises(ConfigError, match="key_pool"):
        Config.load(home)
