"""A real custodian process for tests: `yobikake custodian init` on a temporary home, then
`yobikake custodian serve` on a free loopback port, as an operator would run them."""

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from yobikake.custody.config import CONFIG_FILE
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
    config.write_text(json.dumps({**json.loads(config.read_text()), "key_pool": KEY_POOL}))
    return home, client_dir


def start(root: Path, timeout: float = 30) -> RunningCustodian:
    home, client_dir = init(root)
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
