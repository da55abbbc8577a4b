"""`yobikake demo` runs the custodian as its own process, with its own home under the
application's, reports its audit log to it, and stops it with the demo."""

import os
import socket
import subprocess
import sys

from yobikake.custody import pki
from yobikake.custody.alerts import AlertKind
from yobikake.custody.config import Config
from yobikake.custody.keyring import SigningKey
from yobikake.custody.ledger import Kind, Ledger
from yobikake.vault.devserver import free_port


def demo(home, port) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, YOBIKAKE_HOME=str(home))
    env["YOBIKAKE_CUSTODIAN_URL"] = f"https://127.0.0.1:{port}"
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "yobikake.cli", "demo", "--no-serve", "--no-lists"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_demo_starts_its_custodian_and_stops_it(tmp_path):
    port = free_port()
    done = demo(tmp_path / "var", port)
    assert done.returncode == 0, done.stderr
    assert f"Custodian serving on 127.0.0.1:{port}" in done.stdout
    assert not listening(port)
    home = tmp_path / "var" / "custody"
    assert pki.ClientFiles.of(tmp_path / "var" / "custodian").exist()
    config = Config.load(home)
    ledger = Ledger(config.ledger_path, SigningKey.load(config.signing_key_path))
    try:
        # Its start; the demo's role approvals filed (approve_role); the demo's security
        # officer confirming 岐阜市's key and the seeded roles that see personal data
        # (a command each: its start, then the key or the holder); the audit log
        # reported before the demo stopped. The served custodian's own start and stop
        # are alerts on its channel.
        entries = [e for e in ledger.entries() if e.kind != Kind.ALERT]
        assert (entries[0].kind, entries[-1].kind) == (Kind.START, Kind.REPORT)
        filed = [e.holder_role for e in entries if e.kind == Kind.APPROVAL]
        assert "operator" in filed and "insurer_staff" in filed
        [recipient] = [e for e in entries if e.kind == Kind.RECIPIENT]
        assert recipient.reason.startswith("age1") and recipient.insurer_id
        holders = sorted(e.holder_role for e in entries if e.kind == Kind.HOLDER)
        operators = ["operator"] * 3
        assert holders == ["inquiry_desk", *["insurer_staff"] * 2, *operators, "researcher"]
        assert entries[-1].reason.startswith("audit events 1-")
        alerts = [alert.kind for alert in ledger.alerts()]
        assert alerts == [AlertKind.CUSTODIAN_STARTED, AlertKind.CUSTODIAN_STOPPED]
    finally:
        ledger.close()


def test_the_demo_will_not_take_another_process_for_its_custodian(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = demo(tmp_path / "var", port)
    assert done.returncode != 0
    assert f"127.0.0.1:{port} is in use" in done.stderr
