"""Every setting the code reads and every command Yobikake adds is documented."""

import re
from pathlib import Path

import yobikake

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = (ROOT / "docs" / "operations.md").read_text()


def test_every_environment_setting_is_documented():
    sources = [Path(yobikake.__file__).parent / "settings.py", ROOT / "scripts" / "run-tests"]
    sources += [ROOT / "scripts" / "find-python"]
    names = set()
    for source in sources:
        names |= set(re.findall(r"\b(YOBIKAKE_[A-Z_]+|DATABASE_URL)\b", source.read_text()))
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
