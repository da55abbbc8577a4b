"""The compiled files Python would run in place of the package's sources.

Python loads `__pycache__/<module>.<tag>.pyc` instead of compiling `<module>.py` whenever
the .pyc's header names the source's modification time and size (or, for a hash-based
.pyc, whenever it says not to check): a .pyc written by hand with the source's date and
size runs code that is in no source file, and the code digest (fingerprint.py), which
reads the sources, sees nothing. So every start checks each .pyc of the package that this
interpreter would load: it must hold exactly what its source compiles to (the same
`compile()` Python's import system calls). The code objects are compared, every field
that runs, down through nested functions and classes, but not as marshal bytes: marshal
marks objects for sharing by their reference counts, so the same code dumps differently
from a process with more modules loaded; nor the file name, which the import system sets
as it loads. One without a source, and a sourceless module or an extension module among
the sources (Python would import either), are refused too. A .pyc Python would not load
(its header names another version of the source) is left alone: Python compiles the
source instead.

Compiling all ~290 modules takes 200–350 ms on two busy cores, so each start records,
in its `audit:process:start` event, a digest of the list of .pyc files it found
consistent (kept in `YOBIKAKE_HOME/bytecode-checked`). The next start trusts that list
only if a recent start the log holds under a valid MAC recorded the same digest, and
compiles only what is not on it (some 15 ms when nothing changed).
"""

import _imp
import hashlib
import importlib.util
import marshal
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.machinery import BYTECODE_SUFFIXES, EXTENSION_SUFFIXES
from pathlib import Path
from types import CodeType

from django.conf import settings

import yobikake

# As Python spells the package's directory (not resolved): a .pyc holds the file name it
# was compiled under, and Python compiles under this one.
PACKAGE_DIR = Path(os.path.dirname(yobikake.__file__))
RECORD_KEY = "pycs"  # where a start records the digest of the list it checked
_TAG = sys.implementation.cache_tag
# Found consistent by this process already (a command's check before Django's own, then
# the worker's as it starts): nothing can have changed what a key names.
_CHECKED_HERE: set[str] = set()
_NAME = re.compile(rf"^(?P<stem>[^.]+)\.{re.escape(_TAG or '')}(?:\.opt-(?P<opt>[12]))?\.pyc$")


@dataclass(frozen=True)
class Finding:
    path: str  # from the package's parent: yobikake/…
    problem: str

    def __str__(self) -> str:
        return f"{self.path} {self.problem}"


@dataclass
class Result:
    findings: list[Finding] = field(default_factory=list)
    consistent: set[str] = field(default_factory=set)  # keys of the .pyc files found so
    compiled: int = 0  # how many were compiled (not already on the trusted list)


def _shown(path: Path) -> str:
    try:
        return path.relative_to(PACKAGE_DIR.parent).as_posix()
    except ValueError:  # under sys.pycache_prefix
        return path.as_posix()


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    """The .pyc files of this interpreter's tag where it looks for them, and the
    modules among the sources that Python imports with no source (a .pyc, an extension
    module: Yobikake has neither). One walk of the package (os.walk: a third of the
    time of Path.rglob)."""
    pycs: list[Path] = []
    sourceless: list[Path] = []
    suffixes = tuple(BYTECODE_SUFFIXES) + tuple(EXTENSION_SUFFIXES)
    pattern = f".{_TAG}"
    for directory, subdirectories, files in os.walk(root):
        here = Path(directory)
        if here.name == "__pycache__":
            subdirectories.clear()
            if sys.pycache_prefix is None:
                pycs += [here / f for f in files if pattern in f and f.endswith(".pyc")]
            continue
        sourceless += [here / f for f in files if f.endswith(suffixes)]
    if sys.pycache_prefix is not None:
        mirror = Path(sys.pycache_prefix) / root.resolve().relative_to(root.resolve().anchor)
        for directory, _, files in os.walk(mirror):
            pycs += [Path(directory) / f for f in files if pattern in f and f.endswith(".pyc")]
    return sorted(pycs), sourceless


def _loaded_by_python(pyc: bytes, source: Path, source_bytes: bytes) -> bool:
    """Whether the import system would run this .pyc rather than compile the source
    (importlib's own rules, PEP 552)."""
    if len(pyc) < 16 or pyc[:4] != importlib.util.MAGIC_NUMBER:
        return False
    flags = int.from_bytes(pyc[4:8], "little")
    if flags & ~0b11:
        return False
    if flags & 0b1:  # hash-based
        checked = _imp.check_hash_based_pycs != "never" and (
            flags & 0b10 or _imp.check_hash_based_pycs == "always"
        )
        return not checked or pyc[8:16] == importlib.util.source_hash(source_bytes)
    stat = source.stat()
    return int.from_bytes(pyc[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF and (
        int.from_bytes(pyc[12:16], "little") == stat.st_size & 0xFFFFFFFF
    )


def _key(source: Path, optimization: int, source_bytes: bytes, pyc: bytes) -> str:
    digest = hashlib.sha256(f"{sys.version}\0{source}\0{optimization}\0".encode())
    digest.update(hashlib.sha256(source_bytes).digest())
    digest.update(hashlib.sha256(pyc).digest())
    return digest.hexdigest()[:32]


# Besides what code objects compare themselves (name, arguments, flags, instructions,
# constants by type and value, names, locals, line and exception tables).
_ALSO_COMPARED = ("co_qualname", "co_stacksize", "co_nlocals", "co_varnames", "co_cellvars")


def _same(loaded: CodeType, compiled: CodeType) -> bool:
    if loaded != compiled:
        return False
    if any(getattr(loaded, a) != getattr(compiled, a) for a in _ALSO_COMPARED):
        return False
    inner = [(a, b) for a, b in zip(loaded.co_consts, compiled.co_consts, strict=True)]
    return all(_same(a, b) for a, b in inner if isinstance(a, CodeType))


def _compiles_to(source: Path, source_bytes: bytes, optimization: int, body: bytes) -> bool:
    try:
        compiled = compile(
            source_bytes, str(source), "exec", dont_inherit=True, optimize=optimization
        )
        # Read as the import system reads it (to run it) once the module is imported.
        loaded = marshal.loads(body)  # noqa: S302
    except (SyntaxError, ValueError, EOFError, TypeError):
        return False
    return isinstance(loaded, CodeType) and _same(loaded, compiled)


def _check_pyc(pyc: Path, trusted: set[str], result: Result) -> None:
    name = _NAME.match(pyc.name)
    source = Path(importlib.util.source_from_cache(str(pyc))) if name else None
    if name is None or source is None or not source.is_file():
        result.findings.append(Finding(_shown(pyc), "has no source"))
        return
    data, source_bytes = pyc.read_bytes(), source.read_bytes()
    if not _loaded_by_python(data, source, source_bytes):
        return
    optimization = int(name["opt"] or 0)
    key = _key(source, optimization, source_bytes, data)
    if key not in trusted:
        result.compiled += 1
        if not _compiles_to(source, source_bytes, optimization, data[16:]):
            result.findings.append(Finding(_shown(pyc), "does not match its source"))
            return
    result.consistent.add(key)


def check(trusted: Iterable[str] = (), root: Path = PACKAGE_DIR) -> Result:
    """Every compiled file of the package this interpreter would load, against its
    source; `trusted` holds the keys of .pyc files already found consistent."""
    result = Result()
    trusted = set(trusted) | _CHECKED_HERE
    pycs, sourceless = _walk(root)
    for pyc in pycs:
        _check_pyc(pyc, trusted, result)
    result.findings += [Finding(_shown(p), "is code with no source") for p in sourceless]
    _CHECKED_HERE.update(result.consistent)
    return result


def _record_path() -> Path:
    return Path(settings.YOBIKAKE_HOME) / "bytecode-checked"


def _digest(keys: Iterable[str]) -> str:
    return "sha256:" + hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]


def trusted_keys(recorded: set[str]) -> set[str]:
    """The keys in `YOBIKAKE_HOME/bytecode-checked`, if a start recorded its digest (any
    in `recorded`); else none."""
    try:
        keys = set(_record_path().read_text().split())
    except OSError:
        return set()
    return keys if _digest(keys) in recorded else set()


def keep(keys: set[str]) -> str | None:
    """Write the keys found consistent for the next start; their digest, to record."""
    path = _record_path()
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        temporary.write_text("\n".join(sorted(keys)))
        temporary.replace(path)
    except OSError:
        return None
    return _digest(keys)
