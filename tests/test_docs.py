"""Every setting the code reads and every command Yobikake adds is documented."""

import re
from pathlib import Path

import yobikake

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def test_every_environment_setting_is_documented():
    settings = (Path(yobikake.__file__).parent / "settings.py").read_text()
    # Names read from the environment: os.environ / envbool / envint / envsecret calls…
    names = set(
        re.findall(r'(?:environ(?:\.get)?[(\[]|env(?:bool|int|secret)\()"([A-Z_]+)"', settings)
    )
    # …and variables the scripts read.
    for script in ("run-tests", "find-python"):
        text = (ROOT / "scripts" / script).read_text()
        names |= set(re.findall(r"\$\{?(YOBIKAKE_[A-Z_]+)", text))
    names -= {"YOBIKAKE_SECRET_KEY_FILE"}  # the _FILE form is documented with its setting
    assert len(names) > 10, names
    undocumented = sorted(n for n in names if f"`{n}`" not in OPERATIONS)
    assert undocumented == []


def test_every_yobikake_command_is_documented():
    commands = {
        path.stem
        for path in Path(yobikake.__file__).parent.glob("*/management/commands/*.py")
        if not path.stem.startswith("_")
    }
    assert commands
    assert [c for c in sorted(commands) if f"`yobikake {c}" not in OPERATIONS] == []
