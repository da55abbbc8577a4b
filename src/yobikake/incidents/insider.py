"""The 2023 attack replayed by today's insider: the maintenance contractor's
administrator of the application's host, holding everything the application domain
holds — its database, its home directory (YOBIKAKE_HOME outside the custody home), its
credentials (settings, environment, the custodian client certificate, the key service's
token) and a shell with the project's code. Three moves, each tried for real:

1. **Keys.** Read every sealed column of the database, gather every key the application
   domain holds or can unwrap, and try each on every batch of values (and every private
   key on every wrapped batch key). Nothing opens: a list's private key exists only in
   custody.
2. **Ask.** Do what the application does to open a person — the vault's `open_request`
   sent through the custodian port with the client certificate — for a real holder (of
   the newest live grant in the database, or else the newest grant), in a tight loop
   over every stored person, leaving out the canaries the custodian tells the
   application about. When the custodian refuses the holder, go on as invented holders
   (the holder is the application's word); when it refuses calls for the hour, ask for
   research instead.
   The custodian's budgets stop the loop; the first critical custody alert is timed.
3. **Bulk.** Ask the port for an export file of one insurer's people under an approval
   that does not exist, encrypted to an age key of the insider's own, and a synthetic
   bulk open (probed with no rows, so the answer tells whether this custodian would
   open everyone without opening anyone).

To measure, the drill reads the custody alert log (`alerts.log` in the custody home) as
the security officer would, and nothing else of custody: not its settings, keys or
ledger. The insider could not read it where custody has its own host.
"""

import base64
import binascii
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrage
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db.models import Max, Model
from django.utils import timezone

from yobikake.accounts.models import User
from yobikake.audit.models import Alert, Event
from yobikake.calling.models import Attempt
from yobikake.custody import sealing
from yobikake.custody.alerts import AlertKind
from yobikake.custody.openbao import CUSTODY_MOUNT
from yobikake.custody.protocol import (
    BulkRequest,
    CustodyRefused,
    CustodyUnavailable,
    FileRequest,
    Holder,
    Purpose,
    Refusal,
    SealedCell,
    field_aad,
)
from yobikake.exports.models import Approval
from yobikake.incidents import canaries
from yobikake.intake.models import SealedBatch, Target, TargetList
from yobikake.synth.leak import NotATestInstallation, refuse_real_installation
from yobikake.vault import datakeys
from yobikake.vault.adapters.local import FileKeyring
from yobikake.vault.custodian import custodian
from yobikake.vault.exports import bulk_request
from yobikake.vault.fields import SealedField
from yobikake.vault.models import Grant, IndexKey
from yobikake.vault.models import Purpose as GrantPurpose
from yobikake.vault.ports import KeyServiceError
from yobikake.vault.reveal import open_request
from yobikake.vault.secrets import wrapped_secret
from yobikake.vault.service import key_service

# Where each table's sealed values say their list and insurer (their associated data).
PLACES: dict[type[Model], tuple[str, str]] = {
    Target: ("target_list_id", "insurer_id"),
    Attempt: ("call_target__target__target_list_id", "call_target__target__insurer_id"),
}
# Files larger than this are data (the database, logs), not keys.
KEY_FILE_LIMIT = 1 << 20
_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-]{24,}")
_PEM = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", re.S)
# Refusals in a row after which the insider takes the loop as stopped.
GIVE_UP_AFTER = 10
# Requests in a row the custodian does not answer after which the insider gives up.
UNANSWERED = 3
# The tight loop's limit in time (the custodian's budgets stop it long before).
LOOP_SECONDS = 120.0
ALERT_LOG = "alerts.log"
# Custody alerts no move of the drill raises (the custodian's own start and stop, a
# heartbeat missed, a channel failing): one of them meeting the drill is not its alert.
NOT_THE_DRILL = frozenset(
    {
        AlertKind.CUSTODIAN_STARTED,
        AlertKind.CUSTODIAN_STOPPED,
        AlertKind.APPLICATION_SILENT,
        AlertKind.CHECK_MISSED,
        AlertKind.MAIL_FAILED,
        AlertKind.WEBHOOK_FAILED,
    }
)


class NotADemo(Exception):
    pass


# -- reading the custody alert log, as the security officer does -------------------------


class AlertLog:
    """The custody alert log (one JSON line an alert), read from where it stood when the
    drill began: the drill's only look into custody, to time the first critical alert.
    The last critical alert before then is kept too: the custodian raises a burst or a
    refusal alert once per 10 minutes or an hour, so a drill run soon after another meets
    that standing alert rather than a new one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.standing: dict[str, Any] | None = None
        self.first_critical: dict[str, Any] | None = None
        self.kinds: Counter[str] = Counter()
        for alert in self._new_alerts():
            if alert.get("severity") == "critical":
                self.standing = alert

    def _new_alerts(self) -> list[dict[str, Any]]:
        if not self.path.exists() or self.path.stat().st_size <= self._offset:
            return []
        with self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        alerts = [json.loads(line) for line in complete.decode("utf-8").splitlines()]
        return [alert for alert in alerts if alert.get("kind") not in NOT_THE_DRILL]

    def poll(self) -> dict[str, Any] | None:
        """The first critical alert since the drill began, once it is in the log."""
        for alert in self._new_alerts():
            self.kinds[f"{alert.get('severity')}: {alert.get('kind')}"] += 1
            if self.first_critical is None and alert.get("severity") == "critical":
                self.first_critical = alert
        return self.first_critical


# -- move 1: every key of the application domain on every sealed value --------------------


@dataclass(frozen=True)
class SealedValue:
    table: str
    column: str
    row_id: int
    list_id: int
    insurer_id: int
    person: int  # the target the value belongs to
    sealed: bytes

    @property
    def aad(self) -> bytes:
        return field_aad(self.table, self.column, self.row_id, self.list_id, self.insurer_id)


def sealed_columns() -> list[tuple[type[Model], str]]:
    from django.apps import apps

    return [
        (model, f.name)
        for model in apps.get_models()
        for f in model._meta.concrete_fields
        if isinstance(f, SealedField)
    ]


def read_sealed_values() -> tuple[list[SealedValue], list[str]]:
    """Every sealed value in the database, with the place it is bound to; and the
    sealed columns whose place the drill does not know (reported, not skipped quietly)."""
    values: list[SealedValue] = []
    unknown: list[str] = []
    for model, column in sealed_columns():
        table = model._meta.db_table
        if model not in PLACES:
            unknown.append(f"{table}.{column}")
            continue
        list_path, insurer_path = PLACES[model]
        person = "id" if model is Target else "call_target__target_id"
        rows = (
            model.objects.exclude(**{column: None})
            .values_list("id", list_path, insurer_path, person, column)
            .iterator(chunk_size=5000)
        )
        for row_id, list_id, insurer_id, target_id, sealed in rows:
            values.append(
                SealedValue(table, column, row_id, list_id, insurer_id, target_id, bytes(sealed))
            )
    return values, unknown


@dataclass
class Keys:
    """What the application domain holds that might open something: symmetric keys
    (each with where it was found) and private keys; and what was looked at."""

    symmetric: dict[bytes, list[str]] = field(default_factory=dict)
    private: list[tuple[str, Any]] = field(default_factory=list)
    looked_at: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, secret: bytes, source: str) -> None:
        if len(secret) == sealing.KEY_BYTES:
            self.symmetric.setdefault(secret, []).append(source)

    def add_text(self, text: str, source: str) -> None:
        """A secret given as text: as bytes, hex, base64, and its SHA-256 (how a key is
        often derived from a passphrase)."""
        self.add(text.encode(), source)
        self.add(hashlib.sha256(text.encode()).digest(), f"{source} (SHA-256)")
        for token in _TOKEN.findall(text):
            for decode in (bytes.fromhex, base64.b64decode, base64.urlsafe_b64decode):
                with contextlib.suppress(ValueError, binascii.Error):
                    self.add(decode(token), f"{source} ({decode.__name__})")


def _within(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def _gather_file(keys: Keys, path: Path, shown: str) -> None:
    size = path.stat().st_size
    if size > KEY_FILE_LIMIT:
        keys.notes.append(f"{shown}: {size:,} bytes, data (read as such, not as a key)")
        return
    data = path.read_bytes()
    keys.add(data, f"file {shown}")
    for block in _PEM.findall(data):
        try:
            private = serialization.load_pem_private_key(block, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            keys.notes.append(f"{shown}: a private key that does not load ({type(exc).__name__})")
            continue
        if isinstance(private, rsa.RSAPrivateKey):
            keys.private.append((f"file {shown} (RSA private key)", private))
        else:
            name = type(private).__name__.lstrip("_")
            keys.notes.append(f"{shown}: a {name}, which cannot unwrap an RSA-OAEP batch key")
    with contextlib.suppress(UnicodeDecodeError):
        keys.add_text(data.decode("utf-8"), f"file {shown}")


def _gather_files(keys: Keys, home: Path, custody_home: Path) -> None:
    """Every file of the application's home (and of its keys and client directories,
    wherever the settings put them), except the custody home: the one given, and the
    demo's place for it, `custody/` in the home."""
    roots = {home, Path(settings.YOBIKAKE_KEYS_DIR), Path(settings.YOBIKAKE_CUSTODIAN_CLIENT_DIR)}
    if settings.YOBIKAKE_MASTER_KEY_FILE:
        roots.add(Path(settings.YOBIKAKE_MASTER_KEY_FILE))
    custody = (custody_home, home / "custody")
    seen: set[Path] = set()
    for root in sorted(roots):
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            if path.resolve() in seen or any(_within(path, c) for c in custody):
                continue
            seen.add(path.resolve())
            shown = str(path.relative_to(home)) if _within(path, home) else str(path)
            keys.looked_at.append(shown)
            _gather_file(keys, path, shown)


def _gather_environment(keys: Keys) -> None:
    for name, value in sorted(os.environ.items()):
        keys.add_text(value, f"environment {name}")
    for name in dir(settings):
        setting = getattr(settings, name, None)
        if name.isupper() and isinstance(setting, str) and setting:
            keys.add_text(str(setting), f"setting {name}")


def _gather_key_service(keys: Keys) -> None:
    """What the application's key service gives it: with the local keyring, every key in
    it (the master key is in the home); with either, every secret it unwraps (the
    authorization and audit keys) and every insurer's index key."""
    keys_dir = Path(settings.YOBIKAKE_KEYS_DIR)
    if settings.YOBIKAKE_KEY_SERVICE == "local":
        master = Path(settings.YOBIKAKE_MASTER_KEY_FILE or keys_dir / "master.key")
        if (keys_dir / "keyring.json").exists():
            stored = FileKeyring(keys_dir / "keyring.json", master).load()
            for name, key in stored.items():
                for version, material in enumerate(key.versions, 1):
                    keys.add(material, f"local keyring {name} v{version}")
    service = key_service()
    for path in sorted(keys_dir.glob("*.wrapped")):
        try:
            keys.add(wrapped_secret(service, keys_dir, path.stem).get(), f"unwrapped {path.name}")
        except KeyServiceError as exc:
            keys.notes.append(f"{path.name}: the key service did not unwrap it ({exc})")
    for insurer_id in IndexKey.objects.values_list("insurer_id", flat=True):
        try:
            keys.add(datakeys.index_key(insurer_id), f"index key of insurer {insurer_id}")
        except (KeyServiceError, datakeys.IndexKeyMissing) as exc:
            keys.notes.append(f"index key of insurer {insurer_id}: {exc}")


def _opens(aead: AESGCM, value: SealedValue) -> bool:
    try:
        sealing.open_field(aead, value.aad, value.sealed)
    except sealing.CannotOpen:
        return False
    return True


def by_batch(values: list[SealedValue]) -> dict[int, list[SealedValue]]:
    batches: dict[int, list[SealedValue]] = {}
    for value in values:
        batches.setdefault(sealing.batch_of(value.sealed), []).append(value)
    return batches


def _opened_with(aead: AESGCM, batch: list[SealedValue]) -> set[int]:
    """The people of a batch that `aead` opens. A batch's values share one key, so a key
    that does not open its first value opens none of them: it is tried on the first, and
    on all only when that one opens."""
    if not _opens(aead, batch[0]):
        return set()
    return {v.person for v in batch if _opens(aead, v)}


def _try_symmetric(keys: Keys, batches: dict[int, list[SealedValue]]) -> set[int]:
    people: set[int] = set()
    for secret in keys.symmetric:
        aead = AESGCM(secret)
        for batch in batches.values():
            people |= _opened_with(aead, batch)
    return people


def _try_private(keys: Keys, batches: dict[int, list[SealedValue]]) -> set[int]:
    """Every private key on every wrapped batch key; the values of any batch it
    unwraps."""
    people: set[int] = set()
    wrapped = SealedBatch.objects.filter(pk__in=list(batches)).values_list("pk", "wrapped_key")
    for batch_id, wrapped_key in wrapped.iterator(chunk_size=2000):
        for _source, private in keys.private:
            try:
                key = private.decrypt(bytes(wrapped_key), sealing.OAEP)
            except ValueError:
                continue
            people |= _opened_with(AESGCM(key), batches[batch_id])
    return people


def try_openbao(
    batches: dict[int, list[SealedValue]], *, addr: str, token: str, mount: str
) -> tuple[list[str], set[int]]:
    """The key service's token asks OpenBao's transit engine to decrypt each wrapped
    batch key under the custodian's key name for its list (what custody's policy must
    refuse the application's token); the values of any batch it answers for are opened.
    What was answered, list by list; and the people opened."""
    import hvac

    from yobikake.custody.keyring import OpenBaoKeyring

    client = hvac.Client(url=addr, token=token, timeout=10)
    wrapped = (
        SealedBatch.objects.filter(pk__in=list(batches))
        .order_by("pk")
        .values_list("pk", "target_list_id", "wrapped_key")
    )
    answers: dict[int, str] = {}
    people: set[int] = set()
    for batch_id, list_id, wrapped_key in wrapped.values_list(
        "pk", "target_list_id", "wrapped_key"
    ):
        if answers.get(list_id, "").startswith("refused"):
            continue  # one key a list: refused once, refused for all its batches
        name = OpenBaoKeyring.key_name(list_id)
        try:
            answer = client.secrets.transit.decrypt_data(
                name=name,
                ciphertext="vault:v1:" + base64.b64encode(bytes(wrapped_key)).decode(),
                mount_point=mount,
            )
        except Exception as exc:  # every answer but a decryption is the finding
            answers[list_id] = f"refused ({type(exc).__name__})"
            continue
        answers[list_id] = "DECRYPTED"
        key = base64.b64decode(answer["data"]["plaintext"])
        people |= _opened_with(AESGCM(key), batches[batch_id])
    lines = [f"transit decrypt with {OpenBaoKeyring.key_name(i)}: {a}" for i, a in answers.items()]
    return lines, people


def move_keys(home: Path, custody_home: Path) -> dict[str, Any]:
    started = time.monotonic()
    values, unknown = read_sealed_values()
    keys = Keys()
    _gather_files(keys, home, custody_home)
    _gather_environment(keys)
    _gather_key_service(keys)
    batches = by_batch(values)
    people = _try_symmetric(keys, batches) | _try_private(keys, batches)
    openbao: list[str] = []
    if settings.YOBIKAKE_KEY_SERVICE == "openbao" and settings.OPENBAO_TOKEN:
        # The custody mount's name is in the project's code; the application's own
        # mount in its settings.
        for mount in dict.fromkeys((CUSTODY_MOUNT, settings.OPENBAO_TRANSIT_MOUNT)):
            answers, by_bao = try_openbao(
                batches, addr=settings.OPENBAO_ADDR, token=settings.OPENBAO_TOKEN, mount=mount
            )
            openbao += [f"{mount}: {line}" for line in answers]
            people |= by_bao
    return {
        "move": "keys",
        "tried": (
            "every sealed value of the database read; every symmetric key found or "
            "unwrapped in the application domain tried on every batch of them (on its "
            "first value, and on all of its values where that one opens: a batch shares "
            "one key), and every private key found on every wrapped batch key; with "
            "OpenBao, the application's token asked to decrypt a wrapped batch key"
        ),
        "sealed_columns": [f"{m._meta.db_table}.{c}" for m, c in sealed_columns()],
        "sealed_columns_not_tried": unknown,
        "values_read": len(values),
        "batches": len(batches),
        "people_read": len({v.person for v in values}),
        "files_read": len(keys.looked_at),
        "symmetric_keys": len(keys.symmetric),
        "symmetric_keys_by_source": dict(
            Counter(s.split(" ")[0] for srcs in keys.symmetric.values() for s in srcs)
        ),
        "private_keys": [source for source, _ in keys.private],
        "notes": keys.notes,
        "openbao": openbao,
        "people_opened": len(people),
        "seconds": round(time.monotonic() - started, 2),
    }


# -- move 2: ask the custodian as the application does ------------------------------------


@dataclass
class Asking:
    """The tight loop's state: who is asking, for what, and what came of it."""

    holder_id: int
    grant_id: int
    purpose: GrantPurpose
    real_holder: int
    invented: list[int] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0
    refused_in_a_row: int = 0
    switched: list[str] = field(default_factory=list)
    opened_at_first_alert: int | None = None


def _holders_grant() -> tuple[Grant | None, str]:
    """A real holder's grant to name: the newest live one for a call or research task;
    failing that, the newest of any (the custodian has no record of grants, so it cannot
    tell a spent one from a live one)."""
    grants = Grant.objects.filter(purpose__in=[GrantPurpose.CALL, GrantPurpose.RESEARCH])
    live = grants.filter(released_at__isnull=True, expires_at__gt=timezone.now())
    grant = live.order_by("-issued_at").first()
    if grant is not None:
        return grant, "live"
    return grants.order_by("-issued_at").first(), "no live grant: the newest, spent"


def _people(lists: list[TargetList], leave_out: frozenset[int]) -> Iterator[Target]:
    fields = ("id", "target_list_id", "insurer_id", *Target.SEALED_FIELDS)
    rows = Target.objects.filter(target_list__in=lists).only(*fields).order_by("id")
    return (t for t in rows.iterator(chunk_size=2000) if t.pk not in leave_out)


def _ask_once(asking: Asking, target: Target) -> str:
    """One open of `target` as the application asks for it: "opened", "refused",
    "unanswered", or "adapted" when the insider works round the refusal at once (another
    purpose, another holder) and asks for the same person again."""
    request = open_request(asking.holder_id, asking.grant_id, target, asking.purpose)
    try:
        custodian().open(request)
    except CustodyUnavailable:
        asking.unanswered += 1
        return "unanswered"
    except CustodyRefused as exc:
        asking.refusals[exc.code] += 1
        asking.refused_in_a_row += 1
        if exc.code == Refusal.HOURS and asking.purpose == GrantPurpose.CALL:
            asking.purpose = GrantPurpose.RESEARCH
            asking.switched.append("calls refused for the hour: asked for research instead")
            return "adapted"
        if exc.code == Refusal.HOLDER_BUDGET:
            asking.holder_id = _invent_holder(asking)
            return "adapted"
        return "refused"
    asking.opened.append(target.pk)
    asking.unanswered = asking.refused_in_a_row = 0
    return "opened"


def _invent_holder(asking: Asking) -> int:
    highest = User.objects.aggregate(Max("pk"))["pk__max"] or 0
    invented = highest + 1000 + len(asking.invented)
    asking.invented.append(invented)
    asking.switched.append(f"holder {asking.holder_id} refused its budget: asked as {invented}")
    return invented


def move_ask(lists: list[TargetList], log: AlertLog) -> dict[str, Any]:
    started = time.monotonic()
    grant, which = _holders_grant()
    if grant is None:
        return {"move": "ask", "tried": "no grant in the database", "people_opened": 0}
    try:
        leave_out = canaries.of_lists(lists)
        told = f"the custodian told the {len(leave_out)} canaries of the lists; left out"
    except CustodyUnavailable:
        leave_out, told = frozenset(), "the custodian did not answer which rows are canaries"
    asking = Asking(grant.holder_id, grant.pk, GrantPurpose(grant.purpose), grant.holder_id)
    asked, stopped = 0, False
    for target in _people(lists, leave_out):
        while _ask_once(asking, target) == "adapted" and asking.refused_in_a_row < GIVE_UP_AFTER:
            pass
        asked += 1
        if asking.opened_at_first_alert is None and log.poll() is not None:
            asking.opened_at_first_alert = len(asking.opened)
        if (
            asking.unanswered >= UNANSWERED
            or asking.refused_in_a_row >= GIVE_UP_AFTER
            or time.monotonic() - started > LOOP_SECONDS
        ):
            stopped = True
            break
    summary = _ask_summary(asking, grant, asked, told, time.monotonic() - started)
    if not stopped:
        summary["stopped_by"] = None  # every stored person was asked for
    summary["holder"]["grant"] = which
    return summary


def _ask_summary(
    asking: Asking, grant: Grant, asked: int, told: str, seconds: float
) -> dict[str, Any]:
    stopped_by = asking.refusals.most_common(1)[0][0] if asking.refusals else None
    if asking.unanswered >= UNANSWERED:
        stopped_by = "the custodian does not answer"
    return {
        "move": "ask",
        "tried": (
            "the vault's open_request for each stored person in turn, sent through the "
            "custodian port with the application's client certificate, as a real holder; "
            "on a budget refusal as invented holders, on a calling-hours refusal for research"
        ),
        "holder": {"user_id": asking.real_holder, "grant_id": grant.pk, "purpose": grant.purpose},
        "canaries": told,
        "people_asked": asked,
        "people_opened": len(set(asking.opened)),
        "people_opened_before_first_alert": asking.opened_at_first_alert,
        "invented_holders": asking.invented,
        "adapted": asking.switched,
        "refusals": dict(asking.refusals),
        "stopped_by": stopped_by,
        "seconds": round(seconds, 2),
    }


# -- move 3: bulk ---------------------------------------------------------------------------


def _bulk(request: BulkRequest) -> tuple[str, int]:
    try:
        opened = custodian().open_bulk(request)
    except CustodyUnavailable:
        return "the custodian does not answer", 0
    except CustodyRefused as exc:
        return f"refused: {exc.code}", 0
    return f"opened {len(opened.values)} people", len(opened.values)


def _export_file(request: BulkRequest) -> tuple[str, int]:
    """The export's rows as a file the custodian encrypts to an age key the insider made
    (the recipient is the application's word), decrypted and its lines counted."""
    mine = pyrage.x25519.Identity.generate()
    template = FileRequest(
        bulk=request,
        name="drill.csv",
        header=request.fields,
        lines=[[SealedCell(row.row_id, f) for f in request.fields] for row in request.rows],
        recipient=str(mine.to_public()),
    )
    try:
        produced = custodian().produce_file(template)
    except CustodyUnavailable:
        return "the custodian does not answer", 0
    except CustodyRefused as exc:
        return f"refused: {exc.code}", 0
    text = pyrage.decrypt(produced.data, [mine]).decode("utf-8")
    people = len(list(csv.reader(io.StringIO(text)))) - 1  # the header
    return f"opened {people} people, in a file encrypted to the insider's own age key", people


def move_bulk(lists: list[TargetList], holder_id: int) -> dict[str, Any]:
    """An export file of the insurer with the most stored people under an approval that
    does not exist, encrypted to the insider's own key; and a synthetic bulk open with no
    rows, which tells whether this custodian would open everyone."""
    try:
        leave_out, canary_note = canaries.of_lists(lists), "canaries left out"
    except CustodyUnavailable:
        leave_out, canary_note = frozenset(), "canaries not known"
    by_insurer = Counter(
        Target.objects.filter(target_list__in=lists).values_list("insurer_id", flat=True)
    )
    attempts: list[dict[str, Any]] = []
    opened = 0
    if by_insurer:
        insurer_id = by_insurer.most_common(1)[0][0]
        fields = tuple(Target.SEALED_FIELDS)
        rows = [
            (t.pk, t.target_list_id, [getattr(t, f) for f in fields])
            for t in _people([tl for tl in lists if tl.insurer_id == insurer_id], leave_out)
        ]
        nowhere = (Approval.objects.aggregate(Max("pk"))["pk__max"] or 0) + 1
        export = bulk_request(
            holder=Holder(user_id=holder_id, role="default"),
            purpose=Purpose.EXPORT,
            approval_id=nowhere,
            insurer_id=insurer_id,
            fields=fields,
            rows=rows,
        )
        result, opened = _export_file(export)
        attempts.append(
            {
                "tried": f"export of insurer {insurer_id}'s {len(rows)} people ({canary_note}) "
                f"under approval #{nowhere}, which does not exist, as a file the custodian "
                "encrypts to an age key the insider made",
                "result": result,
                "people_opened": opened,
            }
        )
    probe = BulkRequest(
        holder=Holder(user_id=holder_id, role="default"),
        purpose=Purpose.SYNTHETIC,
        approval_id=0,
        insurer_id=next(iter(by_insurer), 0),
        fields=tuple(Target.SEALED_FIELDS),
        rows=[],
        wrapped_keys={},
    )
    result, _ = _bulk(probe)
    attempt = {"tried": "synthetic bulk open, probed with no rows", "result": result}
    means = _synthetic_means(result, sum(by_insurer.values()))
    attempts.append({**attempt, **({"means": means} if means else {}), "people_opened": 0})
    return {"move": "bulk", "attempts": attempts, "people_opened": opened}


def _synthetic_means(result: str, people: int) -> str | None:
    if result.startswith("opened"):
        return (
            f'this custodian is set up for synthetic organisations ("synthetic": true in its '
            f"custody.json): the same request with rows would open all {people} stored "
            "people at once. Not sent: a custodian of real data (synthetic false, the "
            "default) refuses it (custody_not_synthetic)"
        )
    if result == f"refused: {Refusal.NOT_SYNTHETIC}":
        return "a custodian of real data: purpose synthetic opens nothing"
    return None


# -- the drill --------------------------------------------------------------------------------


def _where(log: AlertLog, alert: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel": "custody alert channel",
        "file": str(log.path),
        "also": "the custody ledger's alerts (yobikake custodian alerts), and mail to the "
        "security officer when custody.json names an SMTP server",
        **{k: alert.get(k) for k in ("id", "at", "severity", "kind", "label", "ledger_seq")},
        "summary": alert.get("summary"),
    }


def _first_alert(log: AlertLog, began: datetime) -> tuple[float | None, dict[str, Any] | None]:
    alert = log.poll()
    if alert is None:
        return None, None
    at = datetime.fromisoformat(alert["at"])
    return round((at - began).total_seconds(), 3), _where(log, alert)


def _standing(log: AlertLog, began: datetime) -> dict[str, Any] | None:
    """The last critical alert before the drill, when the drill raised none of its own."""
    if log.first_critical is not None or log.standing is None:
        return None
    at = datetime.fromisoformat(log.standing["at"])
    return {
        **_where(log, log.standing),
        "seconds_before_the_drill": round((began - at).total_seconds(), 1),
    }


def run(*, custody_home: Path | None = None) -> dict[str, Any]:
    """The insider's three moves against this installation; the figures as a dict.
    `custody_home`: where the custody alert log is read (default YOBIKAKE_HOME/custody)."""
    try:
        refuse_real_installation("drill")
    except NotATestInstallation:
        raise NotADemo from None
    lists = list(TargetList.objects.filter(state=TargetList.State.ACTIVE))
    if not lists:
        raise NotADemo
    home = Path(settings.YOBIKAKE_HOME)
    custody_home = Path(custody_home or home / "custody")
    log = AlertLog(custody_home / ALERT_LOG)
    app_alerts = Alert.objects.aggregate(Max("pk"))["pk__max"] or 0
    app_events = Event.objects.aggregate(Max("pk"))["pk__max"] or 0
    keys = move_keys(home, custody_home)
    began = datetime.now(UTC)
    ask = move_ask(lists, log)
    # Opened by the time the first critical alert was in the log: during the loop, as
    # the loop saw it; if it came later, everything opened until then.
    before = keys["people_opened"] + (ask.get("people_opened_before_first_alert") or 0)
    alerted = log.poll() is not None
    raised = Counter(log.kinds)
    bulk = move_bulk(lists, ask.get("holder", {}).get("user_id") or 0)
    log.poll()
    bulk["custody_alerts"] = dict(log.kinds - raised)
    seconds, where = _first_alert(log, began)
    moves = [keys, ask, bulk]
    opened = sum(m["people_opened"] for m in moves)
    if not alerted:
        before = opened
    return {
        "people_opened": opened,
        "people_opened_before_first_alert": before,
        "seconds_to_first_alert": seconds,
        "first_alert": where,
        "standing_alert": _standing(log, began),
        "custody_alerts": dict(log.kinds),
        # The insider went round the application's services: its log and alerts hold
        # nothing of the opens (comparing them with the custody ledger is what finds that).
        "application_alerts": Alert.objects.filter(pk__gt=app_alerts).count(),
        "application_events": Event.objects.filter(pk__gt=app_events).count(),
        "measured_by": (
            f"the custody alert log {log.path}, read from where it stood when the drill "
            "began, as the security officer reads it; nothing else of custody was read. "
            "Seconds run from the drill's first request to the custodian to the alert's "
            "own time."
        ),
        "moves": moves,
    }
