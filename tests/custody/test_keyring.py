"""The keyring contract, run against the local keyring and a real OpenBao; the custody
home's settings and the custody signing key."""

import base64
import json
import os
import stat

import hvac
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.custody.conftest import configure, openbao_settings
from yobikake.custody import sealing
from yobikake.custody.config import DEFAULTS, Config, ConfigError
from yobikake.custody.keyring import (
    CannotUnwrap,
    CustodyFileError,
    KeyGone,
    KeyringSettings,
    KeyringUnavailable,
    LocalKeyring,
    OpenBaoKeyring,
    SigningKey,
    fingerprint_of,
    open_keyring,
    verify_signature,
    write_private,
)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keyring(home, keyring_kind):
    config = Config.load(home)
    return open_keyring(config.keyring, config.keys_dir)


# -- the contract, on both keyrings ------------------------------------------------------


def test_create_gives_an_rsa_3072_public_key_and_is_idempotent(keyring):
    pem = keyring.create(1)
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.key_size == 3072
    assert keyring.create(1) == pem
    assert keyring.public_pem(1) == pem
    assert keyring.fingerprint(1) == fingerprint_of(pem)
    assert keyring.create(2) != pem


def test_a_batch_key_sealed_by_the_application_unwraps(keyring):
    batch_key, wrapped = sealing.seal_batch_key(keyring.create(1))
    assert keyring.decrypt(1, wrapped) == batch_key


def test_a_batch_key_wrapped_to_another_list_does_not_unwrap(keyring):
    keyring.create(1)
    _, wrapped = sealing.seal_batch_key(keyring.create(2))
    with pytest.raises(CannotUnwrap):
        keyring.decrypt(1, wrapped)


def test_oaep_with_sha1_is_not_the_scheme(keyring):
    """The scheme is OAEP with SHA-256 for hash and MGF1: what OpenBao's transit engine
    decrypts. The common SHA-1 default would not unwrap there, nor here."""
    public = serialization.load_pem_public_key(keyring.create(1).encode())
    sha1 = hashes.SHA1()  # noqa: S303 - the scheme this test shows is refused
    oaep_sha1 = padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
    with pytest.raises(CannotUnwrap):
        keyring.decrypt(1, public.encrypt(os.urandom(32), oaep_sha1))


def test_destroy_leaves_nothing_that_unwraps(keyring):
    _, wrapped = sealing.seal_batch_key(keyring.create(1))
    keyring.destroy(1)
    with pytest.raises(KeyGone):
        keyring.decrypt(1, wrapped)
    with pytest.raises(KeyGone):
        keyring.public_pem(1)
    keyring.destroy(1)  # already gone: no error


def test_a_list_never_created_has_no_key(keyring):
    with pytest.raises(KeyGone):
        keyring.public_pem(99)


# -- the local keyring -------------------------------------------------------------------


def test_local_private_keys_are_0600_files_removed_on_destroy(home):
    keyring = LocalKeyring(home / "keys")
    keyring.create(5)
    path = home / "keys" / "list-5.pem"
    assert mode(path) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    keyring.destroy(5)
    assert not path.exists()
    assert not [p for p in (home / "keys").iterdir() if "list-5" in p.name]


def test_a_local_key_file_others_may_read_is_refused(home):
    LocalKeyring(home / "keys").create(5)
    (home / "keys" / "list-5.pem").chmod(0o644)
    with pytest.raises(CustodyFileError, match="open to others"):
        LocalKeyring(home / "keys").public_pem(5)


# -- OpenBao -----------------------------------------------------------------------------


def bao_keyring(home, openbao) -> OpenBaoKeyring:
    configure(home, keyring=openbao_settings(home, openbao))
    settings = Config.load(home).keyring
    assert isinstance(settings, KeyringSettings)
    return OpenBaoKeyring(settings)


def test_openbao_keeps_the_private_key_and_destroys_it(home, openbao):
    keyring = bao_keyring(home, openbao)
    keyring.create(1)
    transit = openbao.client().secrets.transit
    key = transit.read_key(name="yobikake-list-1", mount_point=keyring._mount)["data"]
    assert (key["type"], key["exportable"], key["deletion_allowed"]) == ("rsa-3072", False, False)
    assert not list((home / "keys").glob("list-*"))
    keyring.destroy(1)
    with pytest.raises(hvac.exceptions.InvalidPath):
        transit.read_key(name="yobikake-list-1", mount_point=keyring._mount)


def test_openbao_decrypts_what_the_application_wraps_as_transit_ciphertext(home, openbao):
    """The wrapped key is bare RSA-OAEP; transit takes it as `vault:v1:` + base64."""
    keyring = bao_keyring(home, openbao)
    batch_key, wrapped = sealing.seal_batch_key(keyring.create(1))
    transit = openbao.client().secrets.transit
    answer = transit.decrypt_data(
        name="yobikake-list-1",
        ciphertext="vault:v1:" + base64.b64encode(wrapped).decode(),
        mount_point=keyring._mount,
    )
    assert base64.b64decode(answer["data"]["plaintext"]) == batch_key


def test_a_transit_key_made_beforehand_under_the_name_is_not_sealed_to(home, openbao):
    keyring = bao_keyring(home, openbao)
    openbao.client().secrets.transit.create_key(
        name="yobikake-list-1", key_type="rsa-3072", exportable=True, mount_point=keyring._mount
    )
    with pytest.raises(KeyringUnavailable, match="non-exportable"):
        keyring.create(1)


def test_openbao_unreachable_fails_closed(home):
    write_private(home / "bao-token", b"token")
    configure(
        home, keyring={"kind": "openbao", "addr": "http://127.0.0.1:9", "token_file": "bao-token"}
    )
    keyring = OpenBaoKeyring(Config.load(home).keyring)
    with pytest.raises(KeyringUnavailable):
        keyring.create(1)


def test_approle_login_and_login_again_when_the_token_is_revoked(home, openbao):
    root = openbao.client()
    mount = f"transit-{os.urandom(4).hex()}"
    root.sys.enable_secrets_engine("transit", path=mount)
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy(
        name=f"custodian-{mount}",
        policy=f'path "{mount}/*" {{ capabilities = ["create", "read", "update", "delete"] }}',
    )
    root.auth.approle.create_or_update_approle(
        role_name=mount, token_policies=[f"custodian-{mount}"], token_ttl="10m"
    )
    role_id = root.auth.approle.read_role_id(role_name=mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role_name=mount)["data"]["secret_id"]
    write_private(home / "secret-id", secret_id.encode())
    configure(
        home,
        keyring={
            "kind": "openbao",
            "addr": openbao.addr,
            "mount": mount,
            "role_id": role_id,
            "secret_id_file": "secret-id",
        },
    )
    keyring = OpenBaoKeyring(Config.load(home).keyring)
    batch_key, wrapped = sealing.seal_batch_key(keyring.create(1))
    root.auth.token.revoke(keyring._client.token)
    assert keyring.decrypt(1, wrapped) == batch_key


# -- the custody home and its signing key ------------------------------------------------


def test_init_makes_a_private_home_with_the_defaults(tmp_path):
    config = Config.init(tmp_path / "custody")
    assert mode(config.home) == 0o700
    assert mode(config.keys_dir) == 0o700
    assert mode(config.home / "custody.json") == 0o600
    assert mode(config.signing_key_path) == 0o600
    assert json.loads((config.home / "custody.json").read_text()) == DEFAULTS
    assert config.holder_budget("operator") == 60
    assert config.holder_budget("researcher") == 120
    assert config.holder_budget("supervisor") == 60
    assert (config.centre_hourly, config.calling_hours) == (1000, (9, 20))
    assert (config.refusal_alert_threshold, config.key_cache_ttl) == (5, 300)
    assert (config.centre_per_minute, config.seats) == (30, 50)
    assert (config.bulk_max_rows, config.bulk_per_day, config.synthetic) == (50000, 20, False)
    assert config.keyring == KeyringSettings(kind="local")
    assert config.smtp is None


def test_init_again_keeps_the_settings_and_the_signing_key(home):
    configure(home, centre_hourly=10)
    key = home / "keys" / "custody-signing.pem"
    before = key.read_bytes()
    assert Config.init(home).centre_hourly == 10
    assert key.read_bytes() == before


def test_a_home_others_may_enter_is_refused(home):
    home.chmod(0o755)
    with pytest.raises(CustodyFileError, match="open to others"):
        Config.load(home)


def test_settings_others_may_read_are_refused(home):
    (home / "custody.json").chmod(0o644)
    with pytest.raises(CustodyFileError, match="open to others"):
        Config.load(home)


def test_an_unknown_setting_is_refused(home):
    configure(home, centre_budget=10)  # a typo for centre_hourly
    with pytest.raises(ConfigError, match="unknown"):
        Config.load(home)


def test_calling_hours_out_of_order_are_refused(home):
    configure(home, calling_hours=[20, 9])
    with pytest.raises(ConfigError, match="calling_hours"):
        Config.load(home)


def test_a_synthetic_home_is_made_synthetic_and_stays_so(tmp_path):
    home = tmp_path / "synthetic"
    assert Config.init(home, synthetic=True).synthetic
    assert json.loads((home / "custody.json").read_text())["synthetic"] is True
    assert Config.init(home).synthetic  # init again, without the flag: kept


def test_a_home_of_real_data_is_not_turned_synthetic_by_a_flag(home):
    with pytest.raises(ConfigError, match="not synthetic"):
        Config.init(home, synthetic=True)
    assert not Config.load(home).synthetic


@pytest.mark.parametrize("value", ["true", 1, None])
def test_synthetic_is_true_or_false_and_nothing_else(home, value):
    configure(home, synthetic=value)
    with pytest.raises(ConfigError, match="synthetic"):
        Config.load(home)


@pytest.mark.parametrize("name", ["centre_per_minute", "seats", "bulk_max_rows", "bulk_per_day"])
def test_limits_are_positive_whole_numbers(home, name):
    configure(home, **{name: 0})
    with pytest.raises(ConfigError, match=name):
        Config.load(home)


def test_openbao_needs_exactly_one_way_to_log_in(home):
    configure(home, keyring={"kind": "openbao", "addr": "http://127.0.0.1:8200"})
    with pytest.raises(ConfigError, match="token_file or role_id"):
        Config.load(home)


def test_smtp_settings_and_password_file(home):
    write_private(home / "smtp-password", b"synthetic-password\n")
    configure(
        home,
        smtp={
            "host": "mail.example.org",
            "port": 25,
            "starttls": False,
            "user": "custody",
            "password_file": "smtp-password",
            "from": "custody@example.org",
            "to": "security@example.org",
        },
    )
    smtp = Config.load(home).smtp
    assert smtp is not None
    assert (smtp.host, smtp.port, smtp.starttls, smtp.to) == (
        "mail.example.org",
        25,
        False,
        ("security@example.org",),
    )
    assert smtp.password() == "synthetic-password"


def test_the_signing_key_signs_and_others_do_not_verify(home):
    key = SigningKey.load(home / "keys" / "custody-signing.pem")
    signature = key.sign(b"message")
    assert verify_signature(key.public_pem(), b"message", signature)
    assert not verify_signature(key.public_pem(), b"messagE", signature)
    SigningKey.create(home / "other.pem")
    other = SigningKey.load(home / "other.pem")
    assert not verify_signature(other.public_pem(), b"message", signature)
