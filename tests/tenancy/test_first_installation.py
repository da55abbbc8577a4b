"""The "First real installation" section of docs/operations.md, run as written: its
commands, in order, by the real `yobikake` in a fresh home (and, on PostgreSQL, a fresh
database), from `yobikake migrate` to a first list imported — no demo data anywhere."""

import csv
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from yobikake.synth.people import synthetic_people

ROOT = Path(__file__).resolve().parents[2]
YOBIKAKE = str(Path(sys.executable).with_name("yobikake"))
SECTION = "## First real installation"


def section() -> str:
    text = (ROOT / "docs" / "operations.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S)


def documented_commands() -> list[list[str]]:
    commands = []
    for block in blocks(section(), "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("yobikake "):
                commands.append(shlex.split(line))
    return commands


@pytest.fixture
def fresh_env(tmp_path) -> Iterator[dict[str, str]]:
    """The environment of an operator's shell on a new host: a home of its own and, when
    the suite runs on PostgreSQL, an empty database of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOBIKAKE_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["YOBIKAKE_HOME"] = str(tmp_path / "var")
    server = os.environ.get("DATABASE_URL")
    if not server:
        env.pop("DATABASE_URL", None)
        yield env
        return
    name = f"yobikake_first_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(server)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        yield env
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def write_list(path: Path, fiscal_year: int) -> int:
    """The insurer's list file, as its system would write it (synthetic people)."""
    people = synthetic_people(25, seed=18, fiscal_year=fiscal_year, city="岐阜県岐阜市")
    with path.open("w", encoding="cp932", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["被保険者番号", "氏名", "カナ氏名", "性別", "生年月日", "郵便番号", "住所", "電話番号"]
        )
        for p in people:
            writer.writerow(
                [p.insured_number, p.name_kanji, p.name_kana, p.sex, p.birth_date.isoformat(),
                 p.postal_code, p.address, p.phone]
            )  # fmt: skip
    return len(people)


def test_the_documented_commands_take_a_fresh_home_to_a_first_imported_list(fresh_env, tmp_path):
    commands = documented_commands()
    steps = [command[1:3] if command[1] != "migrate" else ["migrate"] for command in commands]
    assert steps == [
        ["custodian", "init"],
        ["custodian", "serve"],
        ["migrate"],
        ["accounts", "bootstrap"],
        ["tenancy", "import-insurers"],
        ["tenancy", "create-contract"],
        ["intake", "import"],
    ]
    custody, commands = commands[:2], commands[2:]
    [insurers_csv] = blocks(section(), "csv")
    (tmp_path / commands[2][3]).write_text(insurers_csv, encoding="utf-8")
    list_file, insurer, year = commands[4][3], commands[4][5], int(commands[4][7])
    assert commands[4][4:8] == ["--insurer", insurer, "--fiscal-year", str(year)]
    rows = write_list(tmp_path / list_file, year)

    serving = start_custodian(custody, fresh_env, tmp_path)
    try:
        said = run_commands(commands, fresh_env, tmp_path)
    finally:
        serving.terminate()
        serving.wait(timeout=10)
    assert f"{list_file}: accepted — {rows}/{rows} rows accepted" in said


def start_custodian(custody, env, tmp_path) -> subprocess.Popen:
    """The custody step's two commands, on this test's own paths and a free port: `init`
    run to its end, `serve` left running (the application's commands need it)."""
    import time

    from yobikake.vault.devserver import free_port

    port = free_port()
    places = {
        "/srv/yobikake-custody": str(tmp_path / "custody"),
        "/srv/yobikake/var": env["YOBIKAKE_HOME"],
        "127.0.0.1:8101": f"127.0.0.1:{port}",
    }

    def here(command):
        out = []
        for arg in command[1:]:
            for written, own in places.items():
                arg = arg.replace(written, own)
            out.append(arg)
        return [YOBIKAKE, *out]

    env["YOBIKAKE_CUSTODIAN_URL"] = f"https://127.0.0.1:{port}"
    init, serve = custody
    done = subprocess.run(here(init), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    serving = subprocess.Popen(here(serve), env=env)
    deadline = time.monotonic() + 30
    import socket

    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert serving.poll() is None and time.monotonic() < deadline, "the custodian did not start"
        time.sleep(0.1)
    return serving


def run_commands(commands, fresh_env, tmp_path) -> str:
    said = ""
    for command in commands:
        done = subprocess.run(
            [YOBIKAKE, *command[1:]],
            cwd=tmp_path,
            env=fresh_env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        said = done.stdout
    return said
