"""The last verified head of the log, kept outside the database (beside the audit keys).

Checkpoints live in the database too, so someone who deletes the tail of the log and
the checkpoints that signed it leaves nothing inside the database to notice. The witness
does: each intact verification records (seq, hash) here, and the next one fails if the
log no longer reaches that far or holds something else there. After restoring an older
backup on purpose, remove the file (and say so in the incident record)."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class Witness:
    seq: int
    hash: str


def _path() -> Path:
    return Path(settings.YOBIKAKE_AUDIT_WITNESS)


def read_witness() -> Witness | None:
    try:
        data = json.loads(_path().read_text())
    except FileNotFoundError:
        return None
    return Witness(int(data["seq"]), str(data["hash"]))


def write_witness(witness: Witness) -> None:
    path = _path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"seq": witness.seq, "hash": witness.hash}, f)
    os.replace(tmp, path)
