"""`yobikake custodian …` through its runner: a custody home made and kept private, a
server that will not share its port, and the security officer's views of the ledger —
all without Django."""

import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from tests.custody import server_fixture
from tests.custody.server_fixture import YOBIKAKE
from yobikake.custody import pki
from yobikake.vault.devserver import free_port


def custodian(*args, env=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [YOBIKAKE, "custodian", *map(str, args)], capture_output=True, text=True, env=env
    )


def test_init_makes_a_private_home_and_the_application_s_certificate(tmp_path):
    home, client_dir = server_fixture.init(tmp_path)
    for directory in (home, client_dir):
        for path in [directory, *directory.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path} is {mode:o}"
    assert pki.ServerFiles.of(home).exist()
    assert pki.ClientFiles.of(client_dir).exist()
    # Nothing of the custody home is in the application's directory.
    assert sorted(p.name for p in client_dir.iterdir()) == [
        "ca.pem",
        "client-key.pem",
        "client.pem",
    ]
    before = {p: p.read_bytes() for p in home.rglob("*.pem")}
    again = custodian("init", "--home", home, "--client-dir", client_dir)
    assert again.returncode == 0
    assert "nothing to do" in again.stdout
    assert {p: p.read_bytes() for p in home.rglob("*.pem")} == before


def test_init_synthetic_makes_a_home_for_synthetic_organisations_only(tmp_path):
    home, client_dir = tmp_path / "synthetic", tmp_path / "application"
    made = custodian("init", "--home", home, "--client-dir", client_dir, "--synthetic")
    assert made.returncode == 0, made.stderr
    assert json.loads((home / "custody.json").read_text())["synthetic"] is True
    shown = custodian("status", "--home", home)
    assert "yes: may open everything in bulk" in shown.stdout
    real, _ = server_fixture.init(tmp_path / "real")
    turned = custodian("init", "--home", real, "--client-dir", client_dir, "--synthetic")
    assert turned.returncode != 0
    assert "not synthetic" in turned.stderr
    assert json.loads((real / "custody.json").read_text())["synthetic"] is False


def test_the_application_s_directory_may_not_lie_in_the_custody_home(tmp_path):
    made = custodian(
        "init", "--home", tmp_path / "custody", "--client-dir", tmp_path / "custody" / "app"
    )
    assert made.returncode != 0
    assert "must not contain one another" in made.stderr


def test_the_home_defaults_to_custody_under_the_application_s_home(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "YOBIKAKE_HOME": str(tmp_path)}
    assert custodian("init", env=env).returncode == 0
    assert (tmp_path / "custody" / "custody.json").exists()
    assert pki.ClientFiles.of(tmp_path / "custodian").exist()
    env["YOBIKAKE_CUSTODY_HOME"] = str(tmp_path / "elsewhere")
    assert "elsewhere" in custodian("status", env=env).stderr  # not made there yet


def test_serve_refuses_without_a_home_or_a_free_port(tmp_path):
    missing = custodian("serve", "--home", tmp_path / "none", "--bind", "127.0.0.1:1")
    assert missing.returncode != 0
    assert "yobikake custodian init" in missing.stderr
    home, _ = server_fixture.init(tmp_path)
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        busy = custodian("serve", "--home", home, "--bind", f"127.0.0.1:{port}")
    assert busy.returncode != 0
    assert "in use" in busy.stderr


@pytest.fixture(scope="module")
def used_server(tmp_path_factory):
    running = server_fixture.start(tmp_path_factory.mktemp("custodian"))
    client = running.client()
    client.create_list(1, 7)
    client.create_list(2, 7)
    client.shred(2)
    client.close()
    yield running
    running.stop()


def test_status_shows_the_lists_the_ledger_and_the_certificates(used_server):
    shown = custodian("status", "--home", used_server.home)
    assert shown.returncode == 0, shown.stderr
    assert "1 with a key, 1 shredded" in shown.stdout
    assert "centre budget" in shown.stdout
    assert "centre budget / minute" in shown.stdout
    assert "≤ 50000 rows, ≤ 20 a day" in shown.stdout
    assert "server certificate valid until" in shown.stdout
    assert "heartbeat application" in shown.stdout


def test_ledger_verify_beside_a_running_server(used_server):
    verified = custodian("ledger", "verify", "--home", used_server.home)
    assert verified.returncode == 0, verified.stderr
    assert "Ledger verified" in verified.stdout


def test_alerts_lists_none_when_there_are_none(tmp_path):
    home, _ = server_fixture.init(tmp_path)
    shown = custodian("alerts", "--home", home)
    assert shown.returncode == 0, shown.stderr
    assert "No custody alerts." in shown.stdout


def test_alerts_lists_the_serving_custodian_s_own_start(used_server):
    shown = custodian("alerts", "--home", used_server.home, env={**os.environ, "COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    assert "custodian_started" in shown.stdout


def test_the_custodian_s_commands_load_no_django(used_server):
    script = (
        "import sys; from yobikake import cli; "
        f"sys.argv = ['yobikake', 'custodian', 'status', '--home', {str(used_server.home)!r}]; "
        "cli.main(); assert 'django' not in sys.modules, 'django was imported'"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
