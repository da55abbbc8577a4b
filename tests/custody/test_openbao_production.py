"""The production profile against a real OpenBao: `bao server` (not dev mode) from the
repository's server configuration, with raft storage in a directory of the test's own
and a TLS listener whose certificate a custody CA of the test's signed; initialised and
unsealed through the HTTP API, then set up by `custody.openbao.setup` as the security
officer would. The custodian logs in by AppRole; the application's token reads public
keys and is refused everything that opens, exports, changes or administers."""

import base64
import json
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import hvac
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.custody.conftest import CALL_FIELDS, PERSON, Batch, Clock
from tests.custody.server_fixture import register_staff
from yobikake.custody import cli, openbao, pki, sealing
from yobikake.custody.config import Config, ConfigError
from yobikake.custody.core import Custodian
from yobikake.custody.keyring import KeyringUnavailable, OpenBaoKeyring, write_private
from yobikake.custody.protocol import CustodyRefused, CustodyUnavailable
from yobikake.vault import devserver
from yobikake.vault.adapters.openbao import OpenBaoKeyService
from yobikake.vault.ports import KeyKind

INSURER_ID = 21
KEY = "yobikake-list-{}"


@dataclass
class ProductionBao:
    """One OpenBao server with its raft directory; stopped and started again on the same
    data, as a reboot of the custody host would."""

    root: Path
    port: int = field(default_factory=devserver.free_port)
    cluster_port: int = field(default_factory=devserver.free_port)
    process: subprocess.Popen[bytes] | None = None
    unseal_key: str = ""
    root_token: str = ""

    def __post_init__(self) -> None:
        tls_home = self.root / "tls-authority"
        pki.issue(tls_home, self.root / "tls-client", server_names=["127.0.0.1"])
        self.tls = pki.ServerFiles.of(tls_home)
        (self.root / "raft").mkdir(mode=0o700)
        self.audit_log = self.root / "audit.log"
        self.config = self.root / "server.hcl"
        self.config.write_text(
            openbao.server_config(
                data_dir=self.root / "raft",
                address=f"127.0.0.1:{self.port}",
                cluster_address=f"127.0.0.1:{self.cluster_port}",
                tls_cert_file=self.tls.cert,
                tls_key_file=self.tls.key,
                audit_log=self.audit_log,
            )
        )

    @property
    def addr(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.addr, token=token, verify=str(self.tls.ca), timeout=10)

    def start(self) -> None:
        with (self.root / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [devserver.bao_binary(), "server", f"-config={self.config}"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait(lambda client: client.sys.read_seal_status() is not None)

    def initialise(self) -> None:
        answer = self.client().sys.initialize(secret_shares=1, secret_threshold=1)
        self.unseal_key, self.root_token = answer["keys"][0], answer["root_token"]

    def unseal(self) -> None:
        self.client().sys.submit_unseal_key(self.unseal_key)
        # Raft elects this single node leader; until then requests are refused.
        self._wait(lambda client: client.sys.read_leader_status()["is_self"])

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    def _wait(self, ready, timeout: float = 30) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready(client):
                    return
            except Exception:  # noqa: S110 - not listening yet, or no leader yet
                pass
            assert self.process is not None and self.process.poll() is None, "bao exited"
            assert time.monotonic() < deadline, "OpenBao did not become ready"
            time.sleep(0.05)


@dataclass
class Profile:
    bao: ProductionBao
    home: Path
    app_token: str

    def app(self) -> hvac.Client:
        return self.bao.client(self.app_token)


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    devserver.bao_binary()  # no binary: an error, not a skip
    root = tmp_path_factory.mktemp("openbao-production")
    bao = ProductionBao(root)
    bao.start()
    try:
        bao.initialise()
        bao.unseal()
        home = Config.init(root / "custody").home
        register_staff(home, (INSURER_ID,))
        write_private(root / "admin-token", bao.root_token.encode())
        # As the security officer runs it on the custody host.
        cli.main(
            [
                "openbao-setup",
                f"--home={home}",
                f"--addr={bao.addr}",
                f"--ca-file={bao.tls.ca}",
                f"--admin-token-file={root / 'admin-token'}",
                f"--app-token-out={root / 'app-token'}",
                "--bind-cidr=127.0.0.1/32",
            ]
        )
        yield Profile(bao, home, (root / "app-token").read_text().strip())
    finally:
        bao.stop()


@pytest.fixture
def custodian(production):
    custodian = Custodian(production.home, clock=Clock())
    yield custodian
    custodian.close()


def seal_as_the_application(profile: Profile, list_id: int, batch_id: int = 1) -> Batch:
    """A batch sealed to the public key the application's token reads from OpenBao."""
    key = profile.app().secrets.transit.read_key(
        name=KEY.format(list_id), mount_point=openbao.CUSTODY_MOUNT
    )
    public_pem = key["data"]["keys"]["1"]["public_key"]
    batch_key, wrapped = sealing.seal_batch_key(public_pem)
    return Batch(list_id, INSURER_ID, batch_id, wrapped, AESGCM(batch_key))


def call_fields(custodian: Custodian, batch: Batch, row_id: int) -> dict[str, str]:
    return custodian.open(batch.request(row_id)).values


# -- the custodian -----------------------------------------------------------------------


def test_setup_points_the_custodian_at_openbao_by_approle_over_tls(production):
    keyring = json.loads((production.home / "custody.json").read_text())["keyring"]
    assert keyring["kind"] == "openbao"
    assert keyring["addr"].startswith("https://")
    assert keyring["mount"] == "yobikake-custody"
    assert keyring["secret_id_file"] == "openbao-secret-id"
    assert "token_file" not in keyring
    assert (production.home / "openbao-secret-id").stat().st_mode & 0o077 == 0
    assert (production.home / "openbao-ca.pem").read_bytes() == production.bao.tls.ca.read_bytes()


def test_the_custodian_logs_in_by_approle_and_opens_what_the_application_sealed(
    production, custodian
):
    pem = custodian.create_list(1, INSURER_ID)
    batch = seal_as_the_application(production, 1)
    assert call_fields(custodian, batch, 1) == {name: PERSON[name] for name in CALL_FIELDS}
    keyring = custodian.keyring
    assert isinstance(keyring, OpenBaoKeyring)
    root = production.bao.client(production.bao.root_token)
    me = root.auth.token.lookup(keyring._client.token)["data"]
    assert me["policies"] == ["yobikake-custodian"]  # not root, not even "default"
    assert me["ttl"] <= 3600
    key = root.secrets.transit.read_key(name=KEY.format(1), mount_point=openbao.CUSTODY_MOUNT)[
        "data"
    ]
    assert (key["type"], key["exportable"], key["allow_plaintext_backup"]) == (
        "rsa-3072",
        False,
        False,
    )
    assert key["keys"]["1"]["public_key"] == pem


def test_an_expired_token_is_replaced_by_a_new_login(production):
    root = production.bao.client(production.bao.root_token)
    root.auth.approle.create_or_update_approle(
        role_name=openbao.ROLE, token_ttl="2s", token_max_ttl="2s"
    )
    custodian = Custodian(production.home, clock=Clock())
    try:
        pem = custodian.create_list(6, INSURER_ID)
        first = custodian.keyring._client.token
        time.sleep(2.5)
        with pytest.raises(hvac.exceptions.Forbidden):
            root.auth.token.lookup(first)  # expired, gone
        assert call_fields(custodian, sealed_to(pem, 6), 1)["phone"] == PERSON["phone"]
        assert custodian.keyring._client.token != first
    finally:
        custodian.close()
        root.auth.approle.create_or_update_approle(
            role_name=openbao.ROLE,
            token_ttl=openbao.CUSTODIAN_TOKEN_TTL,
            token_max_ttl=openbao.CUSTODIAN_TOKEN_TTL,
        )
    role = root.auth.approle.read_role(role_name=openbao.ROLE)["data"]
    assert role["token_policies"] == [openbao.CUSTODIAN_POLICY]
    assert role["token_bound_cidrs"] == ["127.0.0.1"]


def test_the_custodian_shreds_and_the_key_is_gone(production, custodian):
    custodian.create_list(2, INSURER_ID)
    batch = seal_as_the_application(production, 2)
    certificate = custodian.shred(2)
    assert custodian.verify_certificate(certificate)
    with pytest.raises(hvac.exceptions.InvalidPath):
        production.app().secrets.transit.read_key(
            name=KEY.format(2), mount_point=openbao.CUSTODY_MOUNT
        )
    with pytest.raises(CustodyRefused):
        call_fields(custodian, batch, 1)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "keys/{key}/rotate", None),
        ("post", "keys/{key}/config", {"exportable": True}),
        ("post", "keys/{key}/config", {"deletion_allowed": True, "exportable": True}),
        ("post", "keys/{key}/config", {"min_decryption_version": 2}),
        ("get", "export/encryption-key/{key}", None),
        ("get", "backup/{key}", None),
        ("post", "keys/yobikake-list-900", {"type": "rsa-3072", "exportable": True}),
        ("post", "keys/yobikake-list-901", {"type": "rsa-3072", "allow_plaintext_backup": True}),
        ("post", "keys/yobikake-list-902", {"type": "aes256-gcm96"}),
        ("post", "encrypt/{key}", {"plaintext": "AA=="}),
    ],
)
def test_the_custodian_cannot_take_a_private_key_out_or_change_it(
    production, custodian, method, path, body
):
    custodian.create_list(3, INSURER_ID)
    client = custodian.keyring._client
    url = f"/v1/{openbao.CUSTODY_MOUNT}/{path.format(key=KEY.format(3))}"
    with pytest.raises(hvac.exceptions.Forbidden):
        getattr(client.adapter, method)(url, json=body)


def test_setup_is_refused_a_token_that_is_not_an_administrators(production, tmp_path):
    home = Config.init(tmp_path / "custody").home
    write_private(tmp_path / "token", production.app_token.encode())
    with pytest.raises(SystemExit, match="OpenBao refused"):
        cli.main(
            [
                "openbao-setup",
                f"--home={home}",
                f"--addr={production.bao.addr}",
                f"--ca-file={production.bao.tls.ca}",
                f"--admin-token-file={tmp_path / 'token'}",
                f"--app-token-out={tmp_path / 'app-token'}",
            ]
        )
    assert Config.load(home).keyring.kind == "local"
    assert not (tmp_path / "app-token").exists()


def test_a_server_certificate_of_another_authority_is_refused(production, tmp_path):
    other = tmp_path / "other"
    pki.issue(other, tmp_path / "other-client", server_names=["127.0.0.1"])
    settings = Config.load(production.home).keyring
    keyring = OpenBaoKeyring(replace(settings, ca_file=pki.ServerFiles.of(other).ca))
    with pytest.raises(KeyringUnavailable, match="unreachable"):
        keyring.public_pem(1)


def test_plain_http_to_openbao_off_this_host_is_refused(tmp_path):
    home = Config.init(tmp_path / "custody").home
    values = json.loads((home / "custody.json").read_text())
    values["keyring"] = {
        "kind": "openbao",
        "addr": "http://bao.example.org:8200",
        "role_id": "role",
        "secret_id_file": "secret-id",
    }
    (home / "custody.json").write_text(json.dumps(values))
    with pytest.raises(ConfigError, match="https"):
        Config.load(home)


# -- the application's token -------------------------------------------------------------

LIST_KEY = KEY.format(4)
CIPHERTEXT = "vault:v1:" + base64.b64encode(b"\0" * 384).decode()
REFUSED = [
    # what opens
    ("post", f"yobikake-custody/decrypt/{LIST_KEY}", {"ciphertext": CIPHERTEXT}),
    ("post", f"yobikake-custody/rewrap/{LIST_KEY}", {"ciphertext": CIPHERTEXT}),
    ("get", f"yobikake-custody/export/encryption-key/{LIST_KEY}", None),
    ("get", f"yobikake-custody/export/public-key/{LIST_KEY}", None),
    ("get", f"yobikake-custody/backup/{LIST_KEY}", None),
    ("post", "yobikake-custody/restore", {"backup": "AA=="}),
    # changing or destroying a list's key, or making one
    ("post", f"yobikake-custody/keys/{LIST_KEY}/config", {"exportable": True}),
    ("post", f"yobikake-custody/keys/{LIST_KEY}/config", {"deletion_allowed": True}),
    ("post", f"yobikake-custody/keys/{LIST_KEY}/rotate", None),
    ("delete", f"yobikake-custody/keys/{LIST_KEY}", None),
    ("post", "yobikake-custody/keys/yobikake-list-999", {"type": "rsa-3072"}),
    ("post", f"yobikake-custody/keys/{LIST_KEY}", {"type": "rsa-3072"}),
    ("post", f"yobikake-custody/encrypt/{LIST_KEY}", {"plaintext": "AA=="}),
    ("get", "yobikake-custody/keys", None),  # LIST
    # policies, the custodian's AppRole, tokens
    ("get", "sys/policies/acl/yobikake-app", None),
    ("get", "sys/policies/acl/yobikake-custodian", None),
    ("post", "sys/policies/acl/yobikake-app", {"policy": 'path "*" { capabilities = ["sudo"] }'}),
    ("get", "auth/approle/role/yobikake-custodian/role-id", None),
    ("post", "auth/approle/role/yobikake-custodian/secret-id", {}),
    ("post", "auth/approle/role/yobikake-custodian", {"token_policies": ["yobikake-app"]}),
    ("post", "auth/token/create", {"policies": ["yobikake-custodian"]}),
    ("post", "auth/token/create-orphan", {"policies": ["yobikake-app"]}),
    # the server itself
    ("get", "sys/mounts", None),
    ("post", "sys/mounts/elsewhere", {"type": "transit"}),
    ("post", "sys/mounts/yobikake-custody/tune", {"default_lease_ttl": "1h"}),
    ("delete", "sys/mounts/yobikake-custody", None),
    ("get", "sys/auth", None),
    ("post", "sys/auth/userpass", {"type": "userpass"}),
    ("get", "sys/audit", None),
    ("post", "sys/seal", None),
    ("post", "sys/step-down", None),
    ("get", "sys/storage/raft/configuration", None),
    ("get", "sys/storage/raft/snapshot", None),
    ("post", "sys/capabilities", {"paths": ["yobikake-custody/decrypt/x"], "token": "x"}),
    ("post", "sys/leases/lookup", {"lease_id": "x"}),
    ("get", "sys/internal/counters/activity", None),
    ("get", "identity/entity/id", None),
    ("get", "cubbyhole/anything", None),
]


@pytest.fixture(scope="module")
def application_list(production):
    """List 4's key made by the custodian, and a value sealed to it by the application."""
    custodian = Custodian(production.home, clock=Clock())
    try:
        custodian.create_list(4, INSURER_ID)
    finally:
        custodian.close()
    return seal_as_the_application(production, 4)


def test_the_application_reads_the_public_key_and_seals(production, custodian, application_list):
    key = production.app().secrets.transit.read_key(
        name=LIST_KEY, mount_point=openbao.CUSTODY_MOUNT
    )["data"]
    assert key["keys"]["1"]["public_key"] == custodian.public_key(4)
    assert call_fields(custodian, application_list, 7) == {
        name: PERSON[name] for name in CALL_FIELDS
    }


def test_the_application_token_is_refused_the_wrapped_key_it_holds(production, application_list):
    """The insider's move: the batch key, wrapped to list 4's public key, sent to
    OpenBao with the application's own token."""
    wrapped = "vault:v1:" + base64.b64encode(application_list.wrapped).decode()
    with pytest.raises(hvac.exceptions.Forbidden):
        production.app().secrets.transit.decrypt_data(
            name=LIST_KEY, ciphertext=wrapped, mount_point=openbao.CUSTODY_MOUNT
        )
    refused = [
        json.loads(line)
        for line in production.bao.audit_log.read_text().splitlines()
        if f"yobikake-custody/decrypt/{LIST_KEY}" in line
    ]
    assert any("permission denied" in entry.get("error", "") for entry in refused)


@pytest.mark.parametrize(("method", "path", "body"), REFUSED)
def test_the_application_token_is_refused(production, application_list, method, path, body):
    with pytest.raises(hvac.exceptions.Forbidden):
        if method == "get" and path.endswith("keys"):
            production.app().adapter.list(f"/v1/{path}")
        else:
            getattr(production.app().adapter, method)(f"/v1/{path}", json=body)


@pytest.mark.parametrize("path", ["sys/rekey/init", "sys/generate-root/attempt"])
def test_no_one_starts_a_rekey_or_a_root_generation_unauthenticated(production, path):
    for client in (production.bao.client(), production.app()):
        with pytest.raises(hvac.exceptions.VaultError, match="unsupported operation"):
            client.adapter.put(f"/v1/{path}", json={"secret_shares": 1, "secret_threshold": 1})


def test_the_application_keeps_its_own_key_service_on_its_own_mount(production):
    keys = OpenBaoKeyService(production.app(), mount=openbao.APP_MOUNT)
    keys.create_key("yobikake-insurer-21", KeyKind.WRAPPING)
    wrapped = keys.wrap("yobikake-insurer-21", [b"index key"], aad=b"insurer-index:21")
    assert keys.unwrap(wrapped, aad=b"insurer-index:21") == [b"index key"]
    assert keys.rotate("yobikake-insurer-21") == 2
    keys.create_key("yobikake-audit-checkpoints", KeyKind.SIGNING)
    assert keys.sign("yobikake-audit-checkpoints", b"checkpoint")
    keys.create_key("yobikake-uploads-test", KeyKind.WRAPPING, destroyable=True)
    keys.destroy("yobikake-uploads-test")
    me = production.app().auth.token.lookup_self()["data"]
    assert sorted(me["policies"]) == ["yobikake-app", "yobikake-app-keys"]
    assert production.app().auth.token.renew_self()["auth"]["renewable"]


# -- a restart ---------------------------------------------------------------------------


def sealed_to(public_pem: str, list_id: int) -> Batch:
    """A fresh batch sealed to a public key the application holds (a new wrapped key
    each time, so the custodian must ask OpenBao: nothing comes from its cache)."""
    batch_key, wrapped = sealing.seal_batch_key(public_pem)
    return Batch(list_id, INSURER_ID, 99, wrapped, AESGCM(batch_key))


def test_a_restart_keeps_the_keys_and_the_custodian_logs_in_again(production):
    bao = production.bao
    running = Custodian(production.home, clock=Clock())
    try:
        pem = running.create_list(5, INSURER_ID)
        bao.stop()
        with pytest.raises(CustodyUnavailable):
            call_fields(running, sealed_to(pem, 5), 1)
        bao.start()
        assert bao.client().sys.is_sealed()
        with pytest.raises(CustodyUnavailable):
            call_fields(running, sealed_to(pem, 5), 1)
        bao.unseal()
        # The raft store kept the key, and the token the running custodian had.
        assert call_fields(running, sealed_to(pem, 5), 1)["phone"] == PERSON["phone"]
        old_token = running.keyring._client.token
        bao.client(bao.root_token).auth.token.revoke(old_token)
        # Its token revoked: it logs in again by AppRole.
        assert call_fields(running, sealed_to(pem, 5), 2)["name_kana"] == PERSON["name_kana"]
        assert running.keyring._client.token != old_token
    finally:
        running.close()
    started = Custodian(production.home, clock=Clock())  # a new process: a fresh login
    try:
        assert started.public_key(5) == pem
        assert seal_as_the_application(production, 5).wrapped
        assert call_fields(started, sealed_to(pem, 5), 3)["name_kanji"] == PERSON["name_kanji"]
    finally:
        started.close()
