"""What an insider with a shell on the application host finds after `yobikake demo`: the
demo runs as `make demo` runs it (its custodian, worker and web server, the synthetic
lists, campaigns, exports and incident), and while it serves, everything of the
application domain is scanned — its database (the SQLite files, or a dump of the
PostgreSQL database), every file under its home outside `custody/`, and the environment
of each of its processes. No personal value of the demo's lists may be there, and no key
that opens one: the custody keyring's private keys are found only under `custody/`.
Then Ctrl-C (SIGINT to the process group, as a terminal sends it) stops it all."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from tests.pii import person_values
from yobikake.synth.demo import DEMO_LIST_SCALE, DEMO_LIST_SEED
from yobikake.synth.lists import generate_lists, plan_lists
from yobikake.vault.devserver import free_port

STARTUP = 900  # seconds: the demo imports 106 lists (an RSA-3072 key pair each) first


def demo_values() -> set[str]:
    """Every personal value of the demo's lists, regenerated from the same plan and seed."""
    plans = plan_lists(scale=DEMO_LIST_SCALE, seed=DEMO_LIST_SEED)
    return {
        value
        for generated in generate_lists(plans, seed=DEMO_LIST_SEED)
        for entry in generated.entries
        for value in person_values(entry.person)
        if len(value) >= 4
    }


def private_keys(directory: Path) -> list[bytes]:
    """The custody keyring's private keys, in every form a copy could take."""
    forms = []
    for path in directory.glob("*.pem"):
        pem = path.read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        body = b"".join(pem.strip().splitlines()[1:-1])
        forms += [_one_line(der), body[-64:]]
    return forms


def _one_line(der: bytes, width: int = 48) -> bytes:
    """A stretch of the key's bytes with no line break (grep reads one needle a line)."""
    width = min(width, len(der) // 2)  # the signing key (Ed25519) is 48 bytes in all
    for start in range(len(der) - width, -1, -1):
        window = der[start : start + width]
        if b"\n" not in window and b"\r" not in window:
            return window
    raise AssertionError("no stretch of the key without a line break")


@pytest.fixture
def database(request):
    """The demo's own database: a fresh PostgreSQL database on the PostgreSQL suite
    (dropped afterwards), the SQLite file under its home otherwise."""
    base = os.environ.get("DATABASE_URL")
    if not base:
        yield None
        return
    parts = urlsplit(base)
    name = f"{parts.path.lstrip('/')}_scan"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def session_processes(leader: int) -> list[int]:
    """The pids of the demo's session (the demo started it: `start_new_session`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == leader:
                    found.append(int(entry.name))
            except ProcessLookupError:
                continue
    return found


def processes_naming(home: Path) -> list[bytes]:
    """The command lines of live processes that name `home` (the custodian's does)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(home).encode() in command and state != "Z":
                found.append(command)
    return found


def application_environments(leader: int) -> bytes:
    """The environment of every application process of the demo; the custodian's
    process (custody domain) is left out."""
    out = b""
    for pid in session_processes(leader):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            environment = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if b"custodian" not in command.split(b"\0")[1:3]:
            out += command + b"\n" + environment + b"\n"
    return out


def application_files(home: Path) -> list[Path]:
    return [
        path
        for path in home.rglob("*")
        if path.is_file() and (home / "custody") not in path.parents
    ]


def database_dump(url: str | None) -> bytes:
    if url is None:
        return b""
    done = subprocess.run(["pg_dump", "--no-owner", url], capture_output=True, check=True)
    return done.stdout


def found(needles: set[str] | list[bytes], haystack: bytes, files: list[Path]) -> list[str]:
    """Which needles occur in `haystack` or in any of `files` (GNU grep's fixed-string
    matcher: tens of thousands of needles over tens of megabytes)."""
    with tempfile.NamedTemporaryFile() as patterns:
        patterns.write(b"\n".join(n if isinstance(n, bytes) else n.encode() for n in needles))
        patterns.write(b"\n")
        patterns.flush()
        grep = ["grep", "-a", "-o", "-F", "-f", patterns.name]
        hits = []
        for source, done in [
            ("environment and dump", subprocess.run(grep, input=haystack, capture_output=True)),
            *((str(f), subprocess.run([*grep, str(f)], capture_output=True)) for f in files),
        ]:
            assert done.returncode in (0, 1), done.stderr
            hits += [f"{source}: {line!r}" for line in done.stdout.splitlines()]
        return hits


def wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    pytest.fail(f"the demo did not serve within {STARTUP} s:\n{log.read_text()[-3000:]}")


def start_demo(tmp_path: Path, *options: str, database: str | None = None, **popen):
    """`yobikake demo OPTIONS` in a session of its own, in a fresh home under `tmp_path`,
    on free ports, its output in `demo.log`: (the process, its home, its port, the log)."""
    home = tmp_path / "var"
    port, custody_port = free_port(), free_port()
    env = {
        **os.environ,
        "YOBIKAKE_HOME": str(home),
        "YOBIKAKE_CUSTODIAN_URL": f"https://127.0.0.1:{custody_port}",
    }
    env.pop("YOBIKAKE_CUSTODIAN_CLIENT_DIR", None)
    env.pop("DATABASE_URL", None)
    if database:
        env["DATABASE_URL"] = database
    log = tmp_path / "demo.log"
    command = [sys.executable, "-m", "yobikake.cli", "demo", *options, "--addr"]
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [*command, f"127.0.0.1:{port}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )
    return demo, home, port, log


def assert_nothing_left(demo: subprocess.Popen[bytes], home: Path, what: str) -> None:
    """No process of the demo's session, and no custodian of its home, within 20 s."""
    deadline = time.monotonic() + 20
    while (session_processes(demo.pid) or processes_naming(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in session_processes(demo.pid)]
    assert left == [], f"{what} left processes of the demo running"
    # The custodian runs in a session of its own (the demo stops it): none is left either.
    assert processes_naming(home) == [], f"{what} left the demo's custodian running"


def test_after_the_demo_the_application_domain_holds_no_personal_value_and_no_key_that_opens(
    tmp_path, database
):
    demo, home, port, log = start_demo(
        tmp_path,
        database=database,
        # A terminal's Ctrl-C, even when the tests run in the background (where
        # SIGINT is ignored, and a child would inherit that).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        wait_until_serving(demo, f"http://127.0.0.1:{port}/", log)
        environments = application_environments(demo.pid)
        assert b"db_worker" in environments  # the scan saw the worker, not only the demo
        files = application_files(home)
        assert any(path.name.startswith("yobikake.sqlite3") for path in files) or database
        haystack = environments + database_dump(database)

        values = demo_values()
        assert len(values) > 10_000
        assert found(values, haystack, files) == []

        keys = private_keys(home / "custody" / "keys")
        assert len(keys) > 2 * 100  # the signing key and one key pair per list
        assert found(keys, haystack, files) == []
        # Only a key that authenticates the application to the custodian is private here.
        private = [p for p in files if b"PRIVATE KEY" in p.read_bytes()]
        assert [p.relative_to(home).as_posix() for p in private] == ["custodian/client-key.pem"]
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        try:
            stopped = demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
            stopped = None
    assert stopped is not None, "Ctrl-C did not stop the demo within 30 s"
    assert_nothing_left(demo, home, "Ctrl-C")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_the_demo_stopped_by_a_signal_to_it_alone_leaves_nothing_running(tmp_path, signum):
    """A `kill` (or a service manager, or a closed terminal) reaches the demo's process
    only: the demo still stops its custodian and its worker."""
    demo, home, port, log = start_demo(tmp_path, "--no-lists")
    try:
        wait_until_serving(demo, f"http://127.0.0.1:{port}/", log)
        assert processes_naming(home) != []  # its custodian runs
        demo.send_signal(signum)
        stopped = demo.wait(timeout=30)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert stopped == 128 + signum
    assert_nothing_left(demo, home, "the signal")
