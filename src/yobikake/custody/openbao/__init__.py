"""OpenBao for the production profile: the server's configuration (raft storage, TLS), the
policies of the custodian and of the application, and the setup that writes them.

Two transit mounts on the custody host's OpenBao:

- the **custody mount** (`yobikake-custody`) holds each list's RSA key pair. The
  custodian logs in by AppRole (`yobikake-custodian`: create, read, decrypt, delete for
  shredding); the application's token may only read each key, which gives the public
  half it seals to.
- the **application's mount** (`transit`, OPENBAO_TRANSIT_MOUNT) holds the application
  domain's own keys (blind-index, MAC and upload wrapping keys, the checkpoint signing
  key), which open no stored field.

`setup` is run once by the security officer with an administrator's token (the root
token of `bao operator init`, revoked afterwards): it is what `yobikake custodian
openbao-setup` does, and tests/custody/test_openbao_production.py runs it against a real
server.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template

import hvac

from yobikake.custody.config import CONFIG_FILE, Config
from yobikake.custody.keyring import write_private

HERE = Path(__file__).parent
CUSTODY_MOUNT = "yobikake-custody"
APP_MOUNT = "transit"
CUSTODIAN_POLICY = "yobikake-custodian"
APP_POLICY = "yobikake-app"
APP_KEYS_POLICY = "yobikake-app-keys"
ROLE = "yobikake-custodian"
# In the custody home, next to custody.json.
SECRET_ID_FILE = "openbao-secret-id"  # noqa: S105 - a file name
CA_FILE = "openbao-ca.pem"
# The custodian's token lives an hour (it logs in again when OpenBao refuses an expired
# one); the application's is periodic, renewed by `bao token renew` within the period.
CUSTODIAN_TOKEN_TTL = "1h"  # noqa: S105 - a duration
APP_TOKEN_PERIOD = "768h"  # noqa: S105 - a duration


def policy(name: str, *, custody_mount: str = CUSTODY_MOUNT, app_mount: str = APP_MOUNT) -> str:
    """One of the policies (`yobikake-custodian`, `yobikake-app`, `yobikake-app-keys`)
    for these mounts."""
    text = (HERE / f"{name}.hcl").read_text()
    return Template(text).substitute(custody_mount=custody_mount, app_mount=app_mount)


def server_config(
    *,
    data_dir: Path,
    address: str,
    cluster_address: str,
    tls_cert_file: Path,
    tls_key_file: Path,
    audit_log: Path,
    node_id: str = "custody-1",
) -> str:
    """The server's configuration (`bao server -config=…`)."""
    return Template((HERE / "server.hcl").read_text()).substitute(
        data_dir=data_dir,
        node_id=node_id,
        address=address,
        cluster_address=cluster_address,
        tls_cert_file=tls_cert_file,
        tls_key_file=tls_key_file,
        audit_log=audit_log,
    )


@dataclass(frozen=True)
class Done:
    """What setup made: the custodian's role id (also in custody.json) and the
    application's token, to be handed to the application host."""

    role_id: str
    app_token: str


def setup(
    admin: hvac.Client,
    home: Path,
    *,
    ca_file: Path,
    custody_mount: str = CUSTODY_MOUNT,
    app_mount: str = APP_MOUNT,
    bind_cidrs: tuple[str, ...] = (),
) -> Done:
    """Enable both transit mounts and AppRole (what exists is kept), write the three
    policies, make the custodian's role and a secret id in the custody home, point
    custody.json's keyring at OpenBao by AppRole, and make the application's token.

    `bind_cidrs`: the custody host's addresses; the secret id and the tokens it gets
    work from there only."""
    home = Path(home)
    Config.load(home)  # an initialised, private home
    addr = admin.url
    mounts = admin.sys.list_mounted_secrets_engines()["data"]
    for mount in (custody_mount, app_mount):
        if f"{mount}/" not in mounts:
            admin.sys.enable_secrets_engine("transit", path=mount)
    if "approle/" not in admin.sys.list_auth_methods()["data"]:
        admin.sys.enable_auth_method("approle")
    for name in (CUSTODIAN_POLICY, APP_POLICY, APP_KEYS_POLICY):
        admin.sys.create_or_update_acl_policy(
            name=name, policy=policy(name, custody_mount=custody_mount, app_mount=app_mount)
        )
    admin.auth.approle.create_or_update_approle(
        role_name=ROLE,
        token_policies=[CUSTODIAN_POLICY],
        token_no_default_policy=True,
        token_ttl=CUSTODIAN_TOKEN_TTL,
        token_max_ttl=CUSTODIAN_TOKEN_TTL,
        secret_id_bound_cidrs=list(bind_cidrs) or None,
        token_bound_cidrs=list(bind_cidrs) or None,
    )
    role_id = admin.auth.approle.read_role_id(role_name=ROLE)["data"]["role_id"]
    secret_id = admin.auth.approle.generate_secret_id(role_name=ROLE)["data"]["secret_id"]
    write_private(home / SECRET_ID_FILE, secret_id.encode())
    if Path(ca_file).resolve() != (home / CA_FILE).resolve():
        shutil.copyfile(ca_file, home / CA_FILE)
    _point_keyring(home, addr, custody_mount, role_id)
    app_token = admin.auth.token.create(
        policies=[APP_POLICY, APP_KEYS_POLICY],
        no_default_policy=True,
        no_parent=True,  # outlives the administrator's token, revoked after setup
        period=APP_TOKEN_PERIOD,
        display_name="yobikake-app",
    )["auth"]["client_token"]
    Config.load(home)  # what was written reads back
    return Done(role_id=role_id, app_token=app_token)


def _point_keyring(home: Path, addr: str, mount: str, role_id: str) -> None:
    path = home / CONFIG_FILE
    values = json.loads(path.read_text())
    values["keyring"] = {
        "kind": "openbao",
        "addr": addr,
        "mount": mount,
        "role_id": role_id,
        "secret_id_file": SECRET_ID_FILE,
        "ca_file": CA_FILE,
    }
    write_private(path, (json.dumps(values, indent=2) + "\n").encode())
