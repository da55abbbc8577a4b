"""One contract, three key services: the fake, the local keyring and real OpenBao."""

import secrets

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from yobikake.vault.adapters.fake import FakeKeyService
from yobikake.vault.adapters.local import LocalKeyService
from yobikake.vault.adapters.openbao import BATCH, OpenBaoKeyService
from yobikake.vault.ports import KeyKind, KeyNotFound, KeyServiceError, Wrapped


@pytest.fixture(params=["fake", "local", "openbao"])
def keys(request, tmp_path):
    if request.param == "fake":
        return FakeKeyService()
    if request.param == "local":
        return LocalKeyService(tmp_path / "keys")
    return OpenBaoKeyService(request.getfixturevalue("openbao").client())


def name() -> str:
    return f"test-{secrets.token_hex(4)}"


def test_wrapped_keys_unwrap_to_the_same_bytes_and_are_not_them(keys):
    key = name()
    keys.create_key(key, KeyKind.WRAPPING)
    data_keys = [secrets.token_bytes(32) for _ in range(3)]
    wrapped = keys.wrap(key, data_keys, aad=b"list:1")
    assert all(w.key_name == key for w in wrapped)
    assert not any(
        d.hex() in w.token or str(d) in w.token for d, w in zip(data_keys, wrapped, strict=True)
    )
    assert keys.unwrap(wrapped, aad=b"list:1") == data_keys


def test_a_wrapped_key_is_bound_to_its_owner(keys):
    key = name()
    keys.create_key(key, KeyKind.WRAPPING)
    wrapped = keys.wrap(key, [b"k" * 32], aad=b"list:1")
    with pytest.raises(KeyServiceError):
        keys.unwrap(wrapped, aad=b"list:2")


def test_creating_twice_keeps_the_key(keys):
    key = name()
    keys.create_key(key, KeyKind.WRAPPING)
    wrapped = keys.wrap(key, [b"x" * 32])
    keys.create_key(key, KeyKind.WRAPPING)
    assert keys.unwrap(wrapped) == [b"x" * 32]


def test_batches_larger_than_one_request(keys):
    key = name()
    keys.create_key(key, KeyKind.WRAPPING)
    data_keys = [secrets.token_bytes(32) for _ in range(BATCH + 17)]
    assert keys.unwrap(keys.wrap(key, data_keys)) == data_keys


def test_rotation_keeps_old_wraps_readable_and_rewrap_moves_them(keys):
    key = name()
    keys.create_key(key, KeyKind.WRAPPING)
    old = keys.wrap(key, [b"a" * 32, b"b" * 32], aad=b"i:7")
    assert keys.rotate(key) == 2
    assert keys.unwrap(old, aad=b"i:7") == [b"a" * 32, b"b" * 32]
    new = keys.rewrap(old, aad=b"i:7")
    assert [w.token for w in new] != [w.token for w in old]
    assert ":v2:" in new[0].token
    assert keys.unwrap(new, aad=b"i:7") == [b"a" * 32, b"b" * 32]


def test_destroying_a_key_shreds_what_it_wrapped(keys):
    key = name()
    keys.create_key(key, KeyKind.WRAPPING, destroyable=True)
    wrapped = keys.wrap(key, [b"d" * 32])
    keys.destroy(key)
    with pytest.raises(KeyNotFound):
        keys.unwrap(wrapped)


def test_a_key_not_created_destroyable_cannot_be_destroyed(keys):
    key = name()
    keys.create_key(key, KeyKind.WRAPPING)
    with pytest.raises(KeyServiceError):
        keys.destroy(key)
    assert keys.unwrap(keys.wrap(key, [b"s" * 32])) == [b"s" * 32]


def test_unknown_keys_are_not_found(keys):
    with pytest.raises(KeyNotFound):
        keys.unwrap([Wrapped("no-such-key", "sw:v1:AAAA")])


def test_signatures_verify_with_the_published_public_key(keys):
    key = name()
    keys.create_key(key, KeyKind.SIGNING)
    message = b"yobikake-audit-checkpoint v1\n42\nabc"
    signature = keys.sign(key, message)
    public = load_pem_public_key(keys.public_key_pem(key).encode())
    public.verify(signature, message)  # raises if wrong
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidSignature
        public.verify(signature, message + b"x")


def test_the_local_keyring_survives_a_restart_and_holds_no_plain_key(tmp_path):
    first = LocalKeyService(tmp_path / "keys")
    first.create_key("list-1", KeyKind.WRAPPING)
    wrapped = first.wrap("list-1", [b"z" * 32])
    again = LocalKeyService(tmp_path / "keys")
    assert again.unwrap(wrapped) == [b"z" * 32]
    keyring = tmp_path / "keys" / "keyring.json"
    assert oct(keyring.stat().st_mode & 0o777) == "0o600"
    # Without the master key the keyring says nothing.
    (tmp_path / "keys" / "master.key").write_bytes(secrets.token_bytes(32))
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        LocalKeyService(tmp_path / "keys")


def test_a_stopped_openbao_fails_closed(openbao):
    from yobikake.vault import devserver

    server = devserver.start()
    service = OpenBaoKeyService(server.client())
    service.create_key("k", KeyKind.WRAPPING)
    wrapped = service.wrap("k", [b"q" * 32])
    server.stop()
    with pytest.raises(KeyServiceError):
        service.unwrap(wrapped)


def test_two_processes_sharing_a_keyring_lose_no_keys(tmp_path):
    # Two services on one keys directory, as the web server and a command would be.
    web = LocalKeyService(tmp_path / "keys")
    command = LocalKeyService(tmp_path / "keys")
    web.create_key("authz", KeyKind.WRAPPING)
    wrapped = web.wrap("authz", [b"m" * 32])
    command.create_key("checkpoints", KeyKind.SIGNING)  # must not overwrite "authz"
    restarted = LocalKeyService(tmp_path / "keys")
    assert restarted.unwrap(wrapped) == [b"m" * 32]
    assert command.unwrap(wrapped) == [b"m" * 32]  # learns of keys made elsewhere
    assert web.rotate("authz") == 2
    assert ":v2:" in command.wrap("authz", [b"n" * 32])[0].token or command.rotate("authz") == 3


@pytest.mark.parametrize(
    "make",
    [
        FakeKeyService,
        lambda: LocalKeyService(__import__("pathlib").Path(__import__("tempfile").mkdtemp())),
    ],
)
def test_the_software_services_refuse_malformed_tokens(make):
    # (OpenBao parses its own tokens; GCM authenticates whatever it reads.)
    keys = make()
    keys.create_key("k", KeyKind.WRAPPING)
    token = keys.wrap("k", [b"t" * 32])[0].token
    for bad in (token.replace(":v1:", ":v0:"), token.replace(":v1:", ":v9:"), "xx" + token[2:]):
        with pytest.raises(KeyServiceError):
            keys.unwrap([Wrapped("k", bad)])


def test_a_key_destroyed_by_one_process_no_longer_unwraps_in_another(tmp_path):
    """Two web workers share the local keyring: shredding in one must not leave the key
    alive in the other's memory."""
    shredder, worker = LocalKeyService(tmp_path), LocalKeyService(tmp_path)
    shredder.create_key("list-9", KeyKind.WRAPPING, destroyable=True)
    wrapped = shredder.wrap("list-9", [b"d" * 32])
    assert worker.unwrap(wrapped) == [b"d" * 32]  # the worker holds the key now
    shredder.destroy("list-9")
    with pytest.raises(KeyNotFound):
        worker.unwrap(wrapped)
