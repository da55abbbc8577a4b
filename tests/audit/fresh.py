"""A Yobikake home made the way an operator makes one: a temporary YOBIKAKE_HOME and,
on PostgreSQL, a database of its own, driven by the real `yobikake` command in
subprocesses and read back with the database's own driver (no Django in between)."""

import sqlite3
import subprocess
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg

YOBIKAKE = str(Path(sys.executable).with_name("yobikake"))
DRIVER_ERRORS = (sqlite3.DatabaseError, psycopg.Error)


@dataclass
class FreshHome:
    home: Path
    env: dict[str, str]
    database_url: str | None = None

    @property
    def postgresql(self) -> bool:
        return self.database_url is not None

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
        """`yobikake ARGS` (or `python ARGS` when the first is "-c"/"-m") in this home."""
        command = [sys.executable, *args] if args[0] in ("-c", "-m") else [YOBIKAKE, *args]
        return subprocess.run(
            command, env={**self.env, **env}, capture_output=True, text=True, timeout=timeout
        )

    def migrate(self) -> None:
        done = self.run("migrate", "--verbosity", "0")
        assert done.returncode == 0, done.stderr

    def sql(self, statement: str) -> list[tuple]:
        """Run one statement as the database's administrator would (autocommit)."""
        if self.database_url:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                cursor = conn.execute(statement)
                return cursor.fetchall() if cursor.description else []
        with closing(sqlite3.connect(self.home / "yobikake.sqlite3", isolation_level=None)) as db:
            return db.execute(statement).fetchall()
