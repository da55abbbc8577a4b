"""Compiled files run in place of the source they sit beside: Python loads a `.pyc` from
`__pycache__` whenever its header names the source's modification time and size, and
never looks at the source again. Every start checks that each one it would load holds
what its source compiles to, and refuses one that does not."""

import importlib.util
import json
import marshal
import struct
import sys
from pathlib import Path

import pytest

from tests.audit.fresh import FreshHome
from tests.audit.test_startup import control_alerts, started

# Imported by the URLs, so only once the web serves: never before its start-up check.
MODULE = Path("reports") / "views.py"
SERVE = "import yobikake.wsgi; from django.urls import resolve; resolve('/healthz')"


def bytecode_alerts(home: FreshHome) -> list[tuple]:
    return home.sql(
        "SELECT severity, state, summary FROM audit_alert WHERE rule = 'bytecode_tampered'"
    )


def craft_pyc(source: Path, payload: str) -> Path:
    """A .pyc of the source with `payload` added, dated and sized as the source is."""
    stat = source.stat()
    code = compile(source.read_text() + payload, str(source), "exec", dont_inherit=True)
    header = importlib.util.MAGIC_NUMBER + struct.pack(
        "<III", 0, int(stat.st_mtime) & 0xFFFFFFFF, stat.st_size & 0xFFFFFFFF
    )
    pyc = Path(importlib.util.cache_from_source(str(source)))
    pyc.parent.mkdir(exist_ok=True)
    pyc.write_bytes(header + marshal.dumps(code))
    return pyc


@pytest.fixture
def writing_bytecode(fresh_home: FreshHome) -> FreshHome:
    """Processes that write their .pyc files, as Python does unless told not to."""
    fresh_home.env.pop("PYTHONDONTWRITEBYTECODE", None)
    return fresh_home


def test_a_crafted_pyc_with_the_sources_date_and_size_is_refused_before_it_runs(
    writing_bytecode: FreshHome, installed_copy: Path
):
    home = writing_bytecode
    home.migrate()
    assert home.run("-c", SERVE).returncode == 0  # the .pyc files Python writes pass
    marker = home.home / "crafted-code-ran"
    pyc = craft_pyc(
        installed_copy / MODULE,
        f"\nimport pathlib\npathlib.Path({str(marker)!r}).touch()\n",
    )

    web = started(home, "-c", SERVE)
    assert web.returncode != 0
    assert not marker.exists()
    name = f"yobikake/{pyc.relative_to(installed_copy).as_posix()}"
    assert name in web.stderr and "does not match its source" in web.stderr
    [(severity, state, summary)] = bytecode_alerts(home)
    assert (severity, state) == ("critical", "open") and name in summary
    assert control_alerts(home) == []  # the source, and so the code digest, is unchanged

    verify = started(home, "audit", "verify")
    assert verify.returncode == 1 and name in verify.stderr
    assert len(bytecode_alerts(home)) == 2

    pyc.unlink()
    assert started(home, "-c", SERVE).returncode == 0
    assert not marker.exists()


@pytest.mark.usefixtures("fresh_custody")
def test_a_pyc_without_a_source_or_code_python_would_load_in_its_place_is_refused(
    fresh_home: FreshHome, installed_copy: Path
):
    fresh_home.migrate()
    assert fresh_home.run("audit", "verify").returncode == 0
    tag = sys.implementation.cache_tag
    stray = installed_copy / "vault" / "__pycache__" / f"ghost.{tag}.pyc"
    stray.parent.mkdir(exist_ok=True)
    nothing = marshal.dumps(compile("", "", "exec"))
    stray.write_bytes(importlib.util.MAGIC_NUMBER + bytes(12) + nothing)
    web = started(fresh_home, "-c", "import yobikake.wsgi")
    assert web.returncode != 0 and "vault/__pycache__/ghost" in web.stderr
    stray.unlink()

    # A sourceless module or an extension module beside the sources.
    for alien in ("ghost.pyc", f"ghost{importlib.machinery.EXTENSION_SUFFIXES[0]}"):
        (installed_copy / "vault" / alien).write_bytes(b"\0")
        web = started(fresh_home, "-c", "import yobikake.wsgi")
        assert web.returncode != 0 and f"vault/{alien}" in web.stderr
        (installed_copy / "vault" / alien).unlink()
    assert len(bytecode_alerts(fresh_home)) == 3
    assert started(fresh_home, "-c", "import yobikake.wsgi").returncode == 0


def test_stale_pycs_after_an_edit_are_not_refused(writing_bytecode: FreshHome, installed_copy):
    """Python recompiles a .pyc whose header no longer names its source: it is harmless."""
    home = writing_bytecode
    home.migrate()
    assert home.run("-c", SERVE).returncode == 0
    source = installed_copy / MODULE
    assert Path(importlib.util.cache_from_source(str(source))).exists()
    source.write_text(source.read_text() + "\n# edited\n")
    home.env["PYTHONDONTWRITEBYTECODE"] = "1"  # the stale .pyc stays as it is
    web = home.run("-c", "import yobikake.wsgi", PYTHONDONTWRITEBYTECODE="1")
    assert web.returncode == 0, web.stderr
    assert bytecode_alerts(home) == []


def test_each_start_records_the_pycs_it_checked(writing_bytecode: FreshHome, installed_copy):
    home = writing_bytecode
    home.migrate()
    assert home.run("-c", SERVE).returncode == 0
    assert home.run("-c", SERVE).returncode == 0
    rows = home.sql("SELECT details FROM audit_event WHERE tag = 'audit:process:start'")
    first, second = (json.loads(details) for (details,) in rows)
    assert first["pycs"].startswith("sha256:")
    assert first["code"] == second["code"]
    assert control_alerts(home) == []
