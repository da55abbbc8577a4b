"""The audit tests' own fixtures."""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import yobikake
from tests.audit.fresh import FreshHome


@pytest.fixture
def fresh_home(tmp_path) -> Iterator[FreshHome]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YOBIKAKE_")}
    env["YOBIKAKE_HOME"] = str(tmp_path / "var")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    server = os.environ.get("DATABASE_URL")
    if not server:
        env.pop("DATABASE_URL", None)
        yield FreshHome(tmp_path / "var", env)
        return
    name = f"yobikake_fresh_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(server)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        yield FreshHome(tmp_path / "var", env, env["DATABASE_URL"])
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def installed_copy(fresh_home: FreshHome, tmp_path) -> Path:
    """The home's processes run a copy of the package, which a test may edit (and which
    no one else edits meanwhile: the code digest is compared from start to start)."""
    site = tmp_path / "site"
    package = Path(yobikake.__file__).parent
    shutil.copytree(package, site / "yobikake", ignore=shutil.ignore_patterns("__pycache__"))
    fresh_home.env["PYTHONPATH"] = str(site)
    return site / "yobikake"


@pytest.fixture
def fresh_custody(fresh_home: FreshHome, tmp_path):
    """A custodian process of the home's own, which its `audit verify` reaches for the
    heads it countersigned."""
    from tests.custody import server_fixture

    server = server_fixture.start(tmp_path / "custody-process")
    fresh_home.env["YOBIKAKE_CUSTODIAN_URL"] = server.url
    fresh_home.env["YOBIKAKE_CUSTODIAN_CLIENT_DIR"] = str(server.client_dir)
    yield server
    server.stop()
