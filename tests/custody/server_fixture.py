"""A real custodian process for tests: `yobikake custodian init` on a temporary home, then
`yobikake custodian serve` on a free loopback port, as an operator would run them."""

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from yobikake.custody import holders
from yobikake.custody.config import CONFIG_FILE, Config
from yobikake.custody.keyring import SigningKey
from yobikake.custody.ledger import Ledger, timestamp
from yobikake.custody.protocol import CustodyUnavailable
from yobikake.vault.custodian import HttpCustodian
from yobikake.vault.devserver import free_port

YOBIKAKE = str(Path(sys.executable).with_name("yobikake"))


@dataclass
class RunningCustodian:
    process: subprocess.Popen[bytes]
    url: str
    home: Path
    client_dir: Path
    log: Path

    @property
    def approver_origin(self) -> str:
        """Where the custodian serves the approvers' page."""
        return Config.load(self.home).approver_origin

    def client(self) -> HttpCustodian:
        return HttpCustodian(self.url, self.client_dir)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# Key pairs the test custodian keeps ready: a few, so that tests exercise the pool
# without each server making the default's worth of RSA keys.
KEY_POOL = 2


def init(root: Path) -> tuple[Path, Path]:
    """A custody home and the application's client directory beside it."""
    home, client_dir = root / "custody", root / "application" / "custodian"
    subprocess.run(
        [YOBIKAKE, "custodian", "init", "--home", home, "--client-dir", client_dir],
        check=True,
        capture_output=True,
    )
    config = home / CONFIG_FILE
    settings = {
        **json.loads(config.read_text()),
        "key_pool": KEY_POOL,
        "approver_page": {
            "bind": f"127.0.0.1:{(port := free_port())}",
            "origin": f"http://localhost:{port}",
            "tls": False,
        },
    }
    config.write_text(json.dumps(settings))
    return home, client_dir


# The accounts custody's own tests open for, with every role that opens confirmed, and
# the export approvals they name, confirmed (their registry is tested in
# test_holders.py with an account and an approval outside them).
STAFF = range(0, 4000)


def register_staff(home: Path, insurers: tuple[int, ...]) -> None:
    """STAFF as operators, researchers and staff of `insurers`, in the home's registry
    of holders, and as the ids of export approvals of `insurers` confirmed in custody;
    written straight into its tables (quicker than an entry each)."""
    config = Config.load(home)
    ledger = Ledger(config.ledger_path, SigningKey.load(config.signing_key_path))
    holders.Registry(ledger)  # its tables
    now = datetime.now(UTC) - timedelta(days=1)
    roles = [("operator", None), ("researcher", None)]
    roles += [("insurer_staff", insurer) for insurer in insurers]
    rows = [
        (user_id, role, insurer, timestamp(now + timedelta(days=3650)), timestamp(now))
        for user_id in STAFF
        for role, insurer in roles
    ]
    approvals = [
        (
            user_id,
            insurer,
            timestamp(now + timedelta(days=3650)),
            timestamp(now),
            f"t{user_id}:{insurer}",
        )
        for user_id in STAFF
        for insurer in insurers
    ]
    try:
        with ledger.writing() as writer:
            writer.executemany(
                "INSERT INTO holders (user_id, role, insurer_id, until, confirmed_at, "
                "confirmed_by) VALUES (?, ?, ?, ?, ?, 'tests')",
                rows,
            )
            writer.executemany(
                "INSERT INTO approvals (kind, holder_user_id, holder_name, role, insurer_id, "
                "until, summary, app_ref, filed_at, token_hash, state, confirmed_by) "
                "VALUES ('export', 1, 'tests', 'results', ?2, ?3, '', ?1, ?4, ?5, "
                "'confirmed', 'tests')",
                approvals,
            )
    finally:
        ledger.close()


def start(root: Path, timeout: float = 30, *, staff: tuple[int, ...] = ()) -> RunningCustodian:
    """`staff`: insurers whose STAFF the registry holds (register_staff)."""
    home, client_dir = init(root)
    if staff:
        register_staff(home, staff)
    port = free_port()
    log = root / "custodian.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [YOBIKAKE, "custodian", "serve", "--home", home, "--bind", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = RunningCustodian(process, f"https://127.0.0.1:{port}", home, client_dir, log)
    client = server.client()
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.health()
                return server
            except CustodyUnavailable:
                if process.poll() is not None or time.monotonic() > deadline:
                    server.stop()
                    raise RuntimeError(f"the custodian did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
    finally:
        client.close()
