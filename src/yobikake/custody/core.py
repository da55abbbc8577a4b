"""The custodian's decisions, independent of transport: `Custodian` is what the HTTP
server (server.py) and the in-process fake (yobikake.vault.custodian.InProcess) wrap.

Every method records what it did, or why it refused, in the ledger (ledger.py) before it
returns; whatever the application asks, the rules here are the custodian's own
(config.py, policy.py): the purpose's fields, one person per request, each holder's and
the whole centre's hourly budget, calling hours. A canary opened, or refusals over the
threshold, are critical alerts on the custody channel (alerts.py).

Two rules hold against whoever holds the application's credentials, who can name any
holder in a request and so give each invented holder a fresh hourly budget:

- the burst rule: when the whole centre has opened `centre_per_minute` people within the
  last 60 s, the next open is refused (`Refusal.CENTRE_BURST`) and a critical alert is
  raised (once per 10 minutes): a bulk read through single opens stops within a minute,
  at no more than one minute's worth;
- the seats rule: when more distinct holders open within an hour than the centre has
  `seats`, a critical alert (once per hour); nothing is refused, as a shift change may
  explain it, but the security officer looks.

Bulk opening is one ledger entry for all its rows. An export file (`produce_file`: the
insurer's results file, the notification list) opens the export's fields of one
insurer's rows, at most `bulk_max_rows`, at most `bulk_per_day` times within 24 hours
for the whole centre, each one an info alert and a canary among its rows a critical
one; the file is filled and encrypted to the insurer's age key here (files.py), and
only its ciphertext leaves. `open_bulk`, which returns the values, opens only
synthetic organisations' data, on a synthetic custodian.
"""

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yobikake.custody import files, holders, policy
from yobikake.custody.alerts import AlertChannel, AlertKind, Severity
from yobikake.custody.config import Config
from yobikake.custody.keyring import (
    CannotUnwrap,
    KeyGone,
    KeyPool,
    Keyring,
    KeyringUnavailable,
    LocalKeyring,
    SigningKey,
    fingerprint_of,
    open_keyring,
    verify_signature,
)
from yobikake.custody.ledger import AlertRow, Entry, Head, Kind, Ledger, ListKey, Verification
from yobikake.custody.ledger import Writer as LedgerWriter
from yobikake.custody.protocol import (
    ApprovalRequest,
    ApprovalState,
    BulkOpened,
    BulkRequest,
    CustodyRefused,
    CustodyUnavailable,
    DeletionCertificate,
    FiledApproval,
    FileRequest,
    Holder,
    Opened,
    OpenRequest,
    ProducedFile,
    Purpose,
    Refusal,
    field_aad,
    field_aad_prefix,
)
from yobikake.custody.sealing import KEY_BYTES, CannotOpen, batch_of, open_field

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
BURST_ALERT_EVERY = timedelta(minutes=10)
# Canary rows named in one alert's summary; the rest are counted.
_CANARIES_NAMED = 10
# A refusal because the keyring could not be reached: recorded, but not the holder's
# doing, so not counted towards the refusal alert.
UNAVAILABLE = "custody_unavailable"
_MAX_CACHED = 4096


def verify_certificate(certificate: DeletionCertificate, custody_public_pem: str) -> bool:
    """Whether the deletion certificate is signed by the custody key whose public half
    (pinned by the application and the insurer) is `custody_public_pem`."""
    return verify_signature(custody_public_pem, certificate.message(), certificate.signature)


class BatchKeys:
    """Unwrapped batch keys, in the custodian's memory only, for `ttl` seconds each,
    keyed by list and the SHA-256 of the wrapped key; a shredded list's are forgotten
    and never cached again."""

    def __init__(
        self, keyring: Keyring, ttl: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._keyring = keyring
        self._ttl = ttl
        self._monotonic = monotonic
        self._cache: dict[tuple[int, bytes], tuple[float, AESGCM]] = {}
        self._shredded: set[int] = set()
        self._lock = threading.Lock()

    def cipher(self, list_id: int, wrapped: bytes) -> AESGCM:
        slot = (list_id, hashlib.sha256(wrapped).digest())
        now = self._monotonic()
        hit = self._cache.get(slot)
        if hit is not None and hit[0] > now:
            return hit[1]
        key = self._keyring.decrypt(list_id, wrapped)
        if len(key) != KEY_BYTES:
            raise CannotUnwrap(f"list {list_id}: not an AES-256 key")
        aead = AESGCM(key)
        with self._lock:
            if list_id not in self._shredded:
                if len(self._cache) >= _MAX_CACHED:
                    self._cache = {s: v for s, v in self._cache.items() if v[0] > now}
                    if len(self._cache) >= _MAX_CACHED:
                        self._cache.clear()
                self._cache[slot] = (now + self._ttl, aead)
        return aead

    def forget(self, list_id: int) -> None:
        with self._lock:
            self._shredded.add(list_id)
            self._cache = {s: v for s, v in self._cache.items() if s[0] != list_id}


class _MissingBatch(Exception):
    """A value names a batch whose key the request does not carry."""


class _Ciphers:
    """The batch keys one request's values name, each unwrapped once (through the
    custodian's cache of batch keys)."""

    def __init__(self, keys: BatchKeys, wrapped: Mapping[int, Mapping[int, bytes]]) -> None:
        self._keys = keys
        self._wrapped = wrapped
        self._made: dict[tuple[int, int], AESGCM] = {}

    def open(self, list_id: int, aad: bytes, sealed: bytes) -> str:
        slot = (list_id, batch_of(sealed))
        aead = self._made.get(slot)
        if aead is None:
            wrapped = self._wrapped.get(list_id, {}).get(slot[1])
            if wrapped is None:
                raise _MissingBatch
            aead = self._made[slot] = self._keys.cipher(list_id, wrapped)
        return open_field(aead, aad, sealed)


class Custodian:
    def __init__(
        self,
        home: Path,
        *,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """The custodian of the custody home `home` (its config, keyring, ledger), made by
        `Config.init`. `clock` (aware datetimes) is the custodian's own time, for budgets
        and calling hours; tests pass their own."""
        self.config = Config.load(home)
        self._clock = clock or (lambda: datetime.now(UTC))
        self.signing_key = SigningKey.load(self.config.signing_key_path)
        self.keyring = open_keyring(self.config.keyring, self.config.keys_dir)
        self.ledger = Ledger(self.config.ledger_path, self.signing_key)
        self.registry = holders.Registry(self.ledger)
        self.channel = AlertChannel(self.config, self.ledger, self._clock)
        self._keys = BatchKeys(self.keyring, self.config.key_cache_ttl, monotonic)
        self.pool: KeyPool | None = None
        if isinstance(self.keyring, LocalKeyring) and self.config.key_pool > 0:
            self.pool = KeyPool(self.keyring, self.config.key_pool)
        self.ledger.append(Kind.START, self._clock(), outcome="ok", reason=self.config.keyring.kind)

    def start_key_pool(self) -> None:
        """Keep the local keyring's pool of key pairs filled, in the background (the
        server does; a command that only reads the ledger does not)."""
        if self.pool is not None:
            self.pool.start()

    def key_pool(self) -> dict[str, int] | None:
        """How many key pairs the pool holds, and how many it keeps; None without one."""
        if self.pool is None:
            return None
        return {"ready": self.pool.ready(), "size": self.pool.size}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.stop()
        self.channel.close()
        self.ledger.close()

    # -- lists ---------------------------------------------------------------------------

    def create_list(self, list_id: int, insurer_id: int) -> str:
        """A key pair for the list (idempotent); its public half, PEM. Refused for a list
        once shredded."""
        now = self._clock()
        context: dict[str, Any] = {"list_id": list_id, "insurer_id": insurer_id}
        if not (policy.is_id(list_id) and policy.is_id(insurer_id)):
            self._refuse(Refusal.BAD_REQUEST, now, {})
        existing = self.ledger.list_key(list_id)
        if existing is not None:
            if not existing.active:
                self._refuse(Refusal.SHREDDED, now, context)
            if existing.insurer_id != insurer_id:
                self._refuse(Refusal.BAD_REQUEST, now, context)
            return self._public_pem(existing, now)
        pem = self._ask_keyring(lambda: self.keyring.create(list_id), now, context)
        if self.pool is not None:
            self.pool.taken()
        with self.ledger.writing() as writer:
            if writer.list_key(list_id) is None:  # not made meanwhile by another request
                writer.add_list_key(list_id, insurer_id, fingerprint_of(pem), now)
                writer.append(Kind.CREATE_LIST, now, outcome="created", **context)
        return self.public_key(list_id)

    def public_key(self, list_id: int) -> str:
        now = self._clock()
        return self._public_pem(self._active_list(list_id, now, {"list_id": list_id}), now)

    def _public_pem(self, key: ListKey, now: datetime) -> str:
        """The keyring's public key for the list, checked against the fingerprint the
        ledger recorded when it was made: a key replaced in the keyring is not sealed to."""
        context: dict[str, Any] = {"list_id": key.list_id, "insurer_id": key.insurer_id}
        pem = self._ask_keyring(lambda: self.keyring.public_pem(key.list_id), now, context)
        if fingerprint_of(pem) != key.fingerprint:
            self._refuse(
                Refusal.CANNOT_OPEN,
                now,
                context,
                alert=(
                    AlertKind.KEY_MISSING,
                    f"list {key.list_id}: the keyring's key is not the one made",
                ),
            )
        return pem

    def register_canaries(self, list_id: int, row_ids: list[int]) -> None:
        """Which of the list's rows are canaries (once per list; a second call is refused
        and alerted: replacing them would let the canaries be opened unseen)."""
        now = self._clock()
        context: dict[str, Any] = {"list_id": list_id}
        rows = frozenset(row_ids)
        if not all(policy.is_id(row) for row in rows):
            self._refuse(Refusal.BAD_REQUEST, now, context)
        key = self._active_list(list_id, now, context)
        if key.canaries_at is not None:
            self._refuse(
                Refusal.CANARIES_REGISTERED,
                now,
                context,
                alert=(AlertKind.CANARIES_AGAIN, f"list {list_id}: canaries registered again"),
            )
        with self.ledger.writing() as writer:
            current = writer.list_key(list_id)
            if current is None or current.canaries_at is not None:
                raise CustodyRefused(Refusal.CANARIES_REGISTERED)
            writer.add_canaries(list_id, sorted(rows), now)
            writer.append(
                Kind.CANARIES, now, outcome="registered", reason=f"{len(rows)} rows", **context
            )

    def leave_out(self, list_id: int, campaign_id: int) -> frozenset[int]:
        """The rows a campaign must not queue (the list's canaries); on the ledger."""
        now = self._clock()
        context: dict[str, Any] = {"list_id": list_id, "campaign_id": campaign_id}
        if not policy.is_id(campaign_id):
            self._refuse(Refusal.BAD_REQUEST, now, {"list_id": list_id})
        self._active_list(list_id, now, context)
        with self.ledger.writing() as writer:
            rows = writer.canaries(list_id)
            writer.append(
                Kind.LEAVE_OUT, now, outcome="told", reason=f"{len(rows)} rows", **context
            )
        return rows

    def confirm_recipient(self, insurer_id: int, recipient: str) -> int | None:
        """The security officer confirms the insurer's age key (checked with the insurer,
        out of band): from now on export files of that insurer are encrypted to it and to
        no other, whatever the application asks. A ledger entry (its seq): the history of
        an insurer's keys is the ledger's. None when that key is the one confirmed."""
        if not policy.is_id(insurer_id):
            raise ValueError("an insurer id is a positive integer")
        if not files.is_recipient(recipient):
            raise ValueError("not an age X25519 public key (age1…)")
        if self.ledger.recipient(insurer_id) == recipient:
            return None
        with self.ledger.writing() as writer:
            return writer.append(
                Kind.RECIPIENT,
                self._clock(),
                outcome="confirmed",
                reason=recipient,
                insurer_id=insurer_id,
            )

    def shred(self, list_id: int) -> DeletionCertificate:
        """Destroy the list's private key; the certificate is signed by the custody key.
        Asked again, the same certificate (a caller whose answer was lost may retry)."""
        now = self._clock()
        context: dict[str, Any] = {"list_id": list_id}
        key = self.ledger.list_key(list_id) if policy.is_id(list_id) else None
        if key is None:
            self._refuse(Refusal.UNKNOWN_LIST, now, context)
        context["insurer_id"] = key.insurer_id
        if key.destroyed_at is not None and key.certificate is not None:
            return self._certificate(key, key.destroyed_at, key.certificate)
        if key.active:
            with self.ledger.writing() as writer:
                writer.mark_shredded(list_id)  # from here on, every open is refused
        self._keys.forget(list_id)
        self._ask_keyring(lambda: self.keyring.destroy(list_id), now, context)
        destroyed_at = now.astimezone(UTC).isoformat(timespec="microseconds")
        unsigned = self._certificate(key, destroyed_at, b"")
        signature = self.signing_key.sign(unsigned.message())
        with self.ledger.writing() as writer:
            writer.record_destroyed(list_id, destroyed_at, signature)
            writer.append(Kind.SHRED, now, outcome="destroyed", reason=key.fingerprint, **context)
        return self._certificate(key, destroyed_at, signature)

    @staticmethod
    def _certificate(key: ListKey, destroyed_at: str, signature: bytes) -> DeletionCertificate:
        return DeletionCertificate(
            list_id=key.list_id,
            insurer_id=key.insurer_id,
            key_fingerprint=key.fingerprint,
            destroyed_at=destroyed_at,
            signature=signature,
        )

    def verify_certificate(self, certificate: DeletionCertificate) -> bool:
        return verify_certificate(certificate, self.ledger.public_pem())

    # -- opening -------------------------------------------------------------------------

    def open(self, request: OpenRequest) -> Opened:
        """One person's fields, or `CustodyRefused`. Recorded in the ledger before the
        values leave; values that opened but are then refused (a budget spent meanwhile)
        are dropped."""
        now = self._clock()
        j = request.justification
        context = policy.ledger_context(j)
        code = policy.request_refusal(
            j,
            request.sealed,
            request.wrapped_keys,
            now=now,
            calling_hours=self.config.calling_hours,
        )
        if code is not None:
            self._refuse(code, now, context)
        key = self._active_list(j.list_id, now, context)
        if key.insurer_id != j.insurer_id:
            self._refuse(Refusal.BAD_REQUEST, now, context)
        self._check_holder(j.holder, j.purpose, j.insurer_id, now, context)
        values = self._open_values(request, key, now, context)
        alerts: list[AlertRow | None] = []
        refusal: Refusal | None = None
        with self.ledger.writing() as writer:
            current = writer.list_key(j.list_id)
            if current is None or not current.active:  # shredded while this one opened
                refusal = Refusal.SHREDDED
            else:
                refusal = self._budget_refusal(writer, j.holder.user_id, j.holder.role, now)
            if refusal is not None:
                self._record_refusal(writer, refusal, now, context, alerts)
                alerts.append(self._centre_alert(writer, refusal, now, j.holder.user_id))
            else:
                seq = writer.append(Kind.OPEN, now, outcome="opened", **context)
                alerts.append(self._seats_alert(writer, now, j.holder.user_id))
                if writer.is_canary(j.list_id, j.row_id):
                    # The values still go back: a refusal would tell the insider which
                    # rows are canaries.
                    alerts.append(
                        self.channel.record(
                            writer,
                            now,
                            AlertKind.CANARY_OPENED,
                            f"list {j.list_id} row {j.row_id} opened by holder "
                            f"{j.holder.user_id} ({context['holder_role']}, {j.purpose}, "
                            f"grant {j.grant_id})",
                            holder_user_id=j.holder.user_id,
                            list_id=j.list_id,
                            row_id=j.row_id,
                        )
                    )
        self.channel.publish(alerts)
        if refusal is not None:
            raise CustodyRefused(refusal)
        return Opened(values=values, ledger_seq=seq)

    def _open_values(
        self, request: OpenRequest, key: ListKey, now: datetime, context: dict[str, Any]
    ) -> dict[str, str]:
        j = request.justification
        ciphers = _Ciphers(self._keys, {j.list_id: request.wrapped_keys})

        def open_all() -> dict[str, str]:
            return {
                name: ""
                if sealed is None
                else ciphers.open(
                    j.list_id, field_aad(j.table, name, j.row_id, j.list_id, key.insurer_id), sealed
                )
                for name, sealed in request.sealed.items()
            }

        return self._opening(
            open_all,
            now,
            context,
            f"list {j.list_id} row {j.row_id}: a value that does not open at its place, "
            f"sent for holder {j.holder.user_id}",
        )

    def _opening[T](
        self, call: Callable[[], T], now: datetime, context: dict[str, Any], cannot_open: str
    ) -> T:
        """`call`, which opens sealed values: a value naming a batch whose key was not
        sent is a bad request; one that does not open at its place (or a key that does
        not unwrap) is refused and alerted with `cannot_open`."""
        try:
            return self._ask_keyring(call, now, context)
        except _MissingBatch:
            self._refuse(Refusal.BAD_REQUEST, now, context)
        except (CannotUnwrap, CannotOpen):
            self._refuse(
                Refusal.CANNOT_OPEN, now, context, alert=(AlertKind.CANNOT_OPEN, cannot_open)
            )

    def _budget_refusal(
        self, writer: LedgerWriter, user_id: int, role: str, now: datetime
    ) -> Refusal | None:
        since = now - HOUR
        return policy.budget_refusal(
            holder_opens=writer.count(Kind.OPEN, since, holder_user_id=user_id),
            holder_budget=self.config.holder_budget(role),
            centre_minute_opens=writer.count(Kind.OPEN, now - MINUTE),
            centre_per_minute=self.config.centre_per_minute,
            centre_opens=writer.count(Kind.OPEN, since),
            centre_budget=self.config.centre_hourly,
        )

    def _centre_alert(
        self, writer: LedgerWriter, refusal: Refusal, now: datetime, user_id: int
    ) -> AlertRow | None:
        """A refusal for the whole centre (a budget spent, a burst) is one critical alert
        for the whole centre, whoever asks next."""
        if refusal == Refusal.CENTRE_BUDGET:
            kind, every = AlertKind.CENTRE_BUDGET, HOUR
            summary = f"the centre's {self.config.centre_hourly} opens an hour are spent"
        elif refusal == Refusal.CENTRE_BURST:
            kind, every = AlertKind.CENTRE_BURST, BURST_ALERT_EVERY
            summary = f"the centre opened {self.config.centre_per_minute} people within a minute"
        else:
            return None
        summary += f" (refused first to holder {user_id})"
        return self.channel.record(writer, now, kind, summary, once_per=every)

    def _seats_alert(self, writer: LedgerWriter, now: datetime, user_id: int) -> AlertRow | None:
        holders = writer.holders(Kind.OPEN, now - HOUR)
        if holders <= self.config.seats:
            return None
        return self.channel.record(
            writer,
            now,
            AlertKind.SEATS,
            f"{holders} holders opened within the hour, more than the centre's "
            f"{self.config.seats} seats (the last holder {user_id})",
            once_per=HOUR,
        )

    # -- bulk opening --------------------------------------------------------------------

    def open_bulk(self, request: BulkRequest) -> BulkOpened:
        """Many rows of one insurer opened at once (policy.bulk_refusal says which), or
        `CustodyRefused`. One ledger entry names the holder, the approval, the insurer,
        the fields, and counts the rows and names their lists; an export is an info alert,
        and a canary among its rows a critical one (its values still go back, as with a
        single open). Only synthetic organisations' rows are opened this way: an
        export's rows go back only in a file encrypted to its insurer (`produce_file`)."""
        now = self._clock()
        context = policy.bulk_context(request)
        if request.purpose == Purpose.EXPORT:
            self._refuse(Refusal.BAD_REQUEST, now, context)
        values, seq = self._open_bulk(request, now, context, None)
        return BulkOpened(values=values, ledger_seq=seq)

    def produce_file(self, request: FileRequest) -> ProducedFile:
        """An export file (custody/files.py): its rows opened as `open_bulk` opens an
        export's, with the same limits, ledger entry and alerts, the file filled, written
        and encrypted to `request.recipient`; only the ciphertext goes back. The entry
        and the info alert name the file, its lines, the recipient's key and the
        ciphertext's SHA-256."""
        now = self._clock()
        bulk = request.bulk if isinstance(request.bulk, BulkRequest) else None
        context = policy.bulk_context(bulk) if bulk is not None else {}
        if bulk is None or bulk.purpose != Purpose.EXPORT:
            self._refuse(Refusal.BAD_REQUEST, now, context)

        def write(values: dict[int, dict[str, str]]) -> tuple[files.Written, str]:
            try:
                written = files.write(request, values)
            except files.CannotWrite as exc:
                self._refuse(
                    Refusal.CANNOT_OPEN, now, context, alert=(AlertKind.CANNOT_OPEN, str(exc))
                )
            note = (
                f" into {request.name} ({written.lines} lines) for {request.recipient} "
                f"sha256:{written.sha256}"
            )
            return written, note

        def refused() -> Refusal | None:
            code = files.refusal(request)
            if code is None:
                self._refuse_unconfirmed(bulk.insurer_id, request.recipient, now, context)
                self._check_holder(bulk.holder, bulk.purpose, bulk.insurer_id, now, context)
                self._check_approval("export", bulk.approval_id, bulk.insurer_id, now, context)
            return code

        written, seq = self._open_bulk(bulk, now, context, write, refused)
        return ProducedFile(name=f"{request.name}.age", data=written.data, ledger_seq=seq)

    def _refuse_unconfirmed(
        self, insurer_id: int, recipient: str, now: datetime, context: dict[str, Any]
    ) -> None:
        """An export file goes only to the insurer's age key the security officer
        confirmed (`confirm_recipient`): the application's word names no key. Any other
        is refused, with a critical alert: the insider's way to a whole insurer's rows."""
        confirmed = self.ledger.recipient(insurer_id)
        if confirmed is not None and confirmed == recipient:
            return
        summary = (
            f"an export file of insurer {insurer_id} asked for the age key {recipient}, "
            f"not the one custody confirmed ({confirmed or 'none'})"
        )
        self._refuse(Refusal.RECIPIENT, now, context, alert=(AlertKind.RECIPIENT, summary))

    def _open_bulk(
        self,
        request: BulkRequest,
        now: datetime,
        context: dict[str, Any],
        make: Callable[[dict[int, dict[str, str]]], tuple[Any, str]] | None,
        also_refused: Callable[[], Refusal | None] = lambda: None,
    ) -> tuple[Any, int]:
        """The rows opened under the bulk rules, and the ledger entry's seq; `also_refused`
        says why else the request is refused, once the bulk rules let it go on; `make`
        turns the opened values into what goes back (and a note for the entry)."""
        code = (
            policy.bulk_refusal(
                request, synthetic=self.config.synthetic, max_rows=self.config.bulk_max_rows
            )
            or also_refused()
        )
        if code is not None:
            self._refuse(code, now, context)
        export = request.purpose == Purpose.EXPORT
        lists = sorted({row.list_id for row in request.rows})
        for list_id in lists:
            key = self._active_list(list_id, now, {**context, "list_id": list_id})
            if key.insurer_id != request.insurer_id:
                self._refuse(Refusal.BAD_REQUEST, now, {**context, "list_id": list_id})
        if export:  # refused before the work, and counted again in the same transaction
            with self.ledger.writing() as writer:
                spent = self._bulk_day_spent(writer, now)
            if spent:
                self._refuse(Refusal.BULK_LIMIT, now, context)
        values = self._open_rows(request, now, context)
        result: Any = values
        note = ""
        if make is not None:
            result, note = make(values)
            del values
        alerts: list[AlertRow | None] = []
        refusal: Refusal | None = None
        with self.ledger.writing() as writer:
            keys = [writer.list_key(list_id) for list_id in lists]
            if not all(key is not None and key.active for key in keys):
                refusal = Refusal.SHREDDED
            elif export and self._bulk_day_spent(writer, now):
                refusal = Refusal.BULK_LIMIT
            if refusal is not None:
                self._record_refusal(writer, refusal, now, context, alerts)
            else:
                what = f"{len(request.rows)} rows of lists {','.join(map(str, lists)) or '-'}"
                what += note
                seq = writer.append(Kind.OPEN_BULK, now, outcome="opened", reason=what, **context)
                if export:
                    who = f"holder {request.holder.user_id} ({context['holder_role']})"
                    alerts += self._bulk_alerts(writer, request, lists, who, what, now)
        self.channel.publish(alerts)
        if refusal is not None:
            raise CustodyRefused(refusal)
        return result, seq

    def _open_rows(
        self, request: BulkRequest, now: datetime, context: dict[str, Any]
    ) -> dict[int, dict[str, str]]:
        ciphers = _Ciphers(self._keys, request.wrapped_keys)
        prefixes: dict[tuple[str, str, int], bytes] = {}
        insurer_id = request.insurer_id

        def aad(table: str, name: str, list_id: int, row_id: int) -> bytes:
            place = (table, name, list_id)
            prefix = prefixes.get(place)
            if prefix is None:
                prefix = prefixes[place] = field_aad_prefix(table, name, list_id, insurer_id)
            return prefix + str(row_id).encode()

        def open_all() -> dict[int, dict[str, str]]:
            return {
                row.row_id: {
                    name: ""
                    if sealed is None
                    else ciphers.open(
                        row.list_id, aad(row.table, name, row.list_id, row.row_id), sealed
                    )
                    for name, sealed in row.sealed.items()
                }
                for row in request.rows
            }

        return self._opening(
            open_all,
            now,
            context,
            f"a bulk open for holder {request.holder.user_id} (approval "
            f"{request.approval_id}) sent a value that does not open at its place",
        )

    def _bulk_day_spent(self, writer: LedgerWriter, now: datetime) -> bool:
        opened = writer.count(Kind.OPEN_BULK, now - DAY, purpose=Purpose.EXPORT)
        return opened >= self.config.bulk_per_day

    def _bulk_alerts(
        self,
        writer: LedgerWriter,
        request: BulkRequest,
        lists: list[int],
        who: str,
        what: str,
        now: datetime,
    ) -> list[AlertRow | None]:
        """The info alert every export is, and a critical one naming the canaries among
        its rows."""
        holder = request.holder
        alerts = [
            self.channel.record(
                writer,
                now,
                AlertKind.BULK_OPENED,
                f"{who} opened {what} of insurer {request.insurer_id} for export "
                f"(approval {request.approval_id})",
                severity=Severity.INFO,
                holder_user_id=holder.user_id,
                list_id=lists[0] if len(lists) == 1 else None,
            )
        ]
        rows: dict[int, set[int]] = {}
        for row in request.rows:
            rows.setdefault(row.list_id, set()).add(row.row_id)
        canaries = [
            (list_id, row_id)
            for list_id in lists
            for row_id in sorted(writer.canaries(list_id) & rows[list_id])
        ]
        if canaries:
            named = ", ".join(f"list {li} row {r}" for li, r in canaries[:_CANARIES_NAMED])
            more = len(canaries) - _CANARIES_NAMED
            alerts.append(
                self.channel.record(
                    writer,
                    now,
                    AlertKind.CANARY_OPENED,
                    f"{len(canaries)} canaries opened in bulk by {who} (export, approval "
                    f"{request.approval_id}): {named}" + (f" and {more} more" if more > 0 else ""),
                    holder_user_id=holder.user_id,
                    list_id=canaries[0][0],
                    row_id=canaries[0][1],
                )
            )
        return alerts

    # -- the registry of holders (holders.py) ---------------------------------------------

    def _check_holder(
        self, holder: Holder, purpose: str, insurer_id: int, now: datetime, context: dict[str, Any]
    ) -> None:
        """Refused, with a critical alert, unless custody's own registry holds a role for
        the holder that opens for `purpose` (of `insurer_id`, for an insurer's role): a
        role, account or grant the application made alone opens nothing."""
        roles = holders.PURPOSE_ROLES.get(purpose, frozenset())
        if self.registry.holds(holder.user_id, roles, insurer_id, now):
            return
        summary = (
            f"holder {holder.user_id} (said to be {context.get('holder_role')}) asked to "
            f"open for {purpose} of insurer {insurer_id}, but custody holds no confirmed "
            f"role of theirs for it ({', '.join(sorted(roles)) or 'none opens for it'})"
        )
        self._refuse(
            Refusal.HOLDER_UNKNOWN, now, context, alert=(AlertKind.HOLDER_UNKNOWN, summary)
        )

    def _check_approval(
        self, kind: str, app_ref: int, insurer_id: int, now: datetime, context: dict[str, Any]
    ) -> None:
        """Refused unless the application's approval `app_ref` is confirmed in custody: a
        pending one is refused quietly (the approver has not confirmed yet), one custody
        never had filed is a critical alert (made in the application domain alone)."""
        state = self.registry.state_of(kind, app_ref, insurer_id, now)
        if state == "pending":
            self._refuse(Refusal.APPROVAL_PENDING, now, context)
        if state != "confirmed":
            summary = (
                f"an {kind} of insurer {insurer_id} asked under approval {app_ref}, which "
                "custody holds no confirmation of"
            )
            self._refuse(
                Refusal.APPROVAL_UNKNOWN, now, context, alert=(AlertKind.APPROVAL_UNKNOWN, summary)
            )

    def confirm_holder(
        self, user_id: int, role: str, insurer_id: int | None, until: datetime, by: str
    ) -> int | None:
        """The security officer confirms a role on the custody host (the demo's seeded
        roles; a first approver's own); its ledger entry's seq, or None when custody
        holds it already until then (give or take a day)."""
        now = self._clock()
        until = min(until, now + timedelta(days=self.config.holder_max_days))
        held = self.registry.holds(user_id, frozenset({role}), insurer_id or 0, until - DAY)
        if held and policy.is_id(user_id):
            return None
        with self.ledger.writing() as writer:
            return self.registry.add_holder(
                writer,
                user_id=user_id,
                role=role,
                insurer_id=insurer_id,
                until=until,
                now=now,
                by=by,
            )

    def revoke_holder(self, user_id: int, role: str) -> int:
        """The application took the role away: revoked in custody at once (no second
        factor: taking away needs none). How many confirmed rows it ended."""
        if not (policy.is_id(user_id) and policy.is_name(role)):
            self._refuse(Refusal.BAD_REQUEST, self._clock(), {})
        return self.registry.revoke(user_id, role, self._clock())

    def file_approval(self, request: ApprovalRequest) -> FiledApproval:
        """What the application's approver approved, pending until confirmed on the
        custodian's page with a passkey enrolled in custody; the page's address."""
        now = self._clock()
        try:
            until = datetime.fromisoformat(request.until)
        except (TypeError, ValueError):
            until = None
        insurer = request.insurer_id
        if (
            until is None
            or until.tzinfo is None
            or until <= now
            or request.kind not in holders.KINDS
            or not policy.is_id(request.holder_user_id)
            or not policy.is_name(request.role)
            or not (insurer is None or policy.is_id(insurer))
            or (request.role in holders.INSURER_ROLES and insurer is None)
            or (
                request.kind in holders.ROW_KINDS
                and (insurer is None or not policy.is_id(request.app_ref))
            )
            or not isinstance(request.holder_name, str)
            or not isinstance(request.summary, str)
        ):
            self._refuse(Refusal.BAD_REQUEST, now, {"holder_user_id": request.holder_user_id})
        values = {
            "kind": request.kind,
            "holder_user_id": request.holder_user_id,
            "holder_name": request.holder_name[:150],
            "role": request.role,
            "insurer_id": insurer,
            "until": min(until, now + timedelta(days=self.config.holder_max_days)),
            "summary": request.summary[:500],
            "app_ref": request.app_ref if policy.is_id(request.app_ref) else None,
            "approved_by_user_id": request.approved_by_user_id
            if policy.is_id(request.approved_by_user_id)
            else None,
        }
        with self.ledger.writing() as writer:
            approval_id, token = self.registry.file(writer, values, now)
        return FiledApproval(approval_id, f"{self.config.approver_origin}/approve/{token}")

    def approval_state(self, approval_id: int) -> ApprovalState:
        row = self.registry.approval(approval_id) if policy.is_id(approval_id) else None
        if row is None:
            raise CustodyRefused(Refusal.BAD_REQUEST, "no such approval")
        return ApprovalState(row.id, row.state, row.confirmed_at, row.confirmed_by)

    def confirm_approval(self, approval: holders.ApprovalRow, approver: holders.ApproverRow) -> int:
        """The approver, whose passkey the page verified, confirms a pending approval;
        a role's goes into the registry. Its ledger entry's seq; `CustodyRefused` (and a
        critical alert) for a spent or stale approval, or an approver confirming their
        own."""
        now = self._clock()
        context: dict[str, Any] = {"holder_user_id": approval.holder_user_id}
        approval = self.registry.approval(approval.id) or approval
        filed = datetime.fromisoformat(approval.filed_at)
        problem = ""
        if approver.user_id == approval.holder_user_id:
            problem = f"approver {approver.name} confirming a role of their own"
        elif approval.state != "pending":
            problem = f"approval {approval.id} confirmed again"
        elif now - filed > timedelta(days=holders.PENDING_DAYS):
            problem = f"approval {approval.id} confirmed after {holders.PENDING_DAYS} days"
        if problem:
            self.refuse_confirmation(problem, context)
        until = datetime.fromisoformat(approval.until)
        with self.ledger.writing() as writer:
            if not self.registry.mark_confirmed(writer, approval.id, approver.name, now):
                raise CustodyRefused(Refusal.BAD_REQUEST, "already confirmed")
            if approval.kind == "role":
                self.registry.add_holder(
                    writer,
                    user_id=approval.holder_user_id,
                    role=approval.role,
                    insurer_id=approval.insurer_id,
                    until=until,
                    now=now,
                    by=approver.name,
                    approval_id=approval.id,
                )
            return writer.append(
                Kind.APPROVAL,
                now,
                outcome="confirmed",
                reason=f"{approval.kind} {approval.role} by {approver.name}",
                holder_user_id=approval.holder_user_id,
                holder_role=approval.role,
                insurer_id=approval.insurer_id,
                grant_id=approval.id,
            )

    def refuse_confirmation(self, problem: str, context: dict[str, Any]) -> NoReturn:
        """A confirmation refused on the approvers' page: on the ledger, and a critical
        alert (someone holds a link, or tries a passkey, that does not confirm)."""
        self._refuse(
            Refusal.BAD_REQUEST,
            self._clock(),
            context,
            alert=(AlertKind.APPROVAL_REFUSED, problem),
        )

    # -- refusing ------------------------------------------------------------------------

    def _active_list(self, list_id: Any, now: datetime, context: dict[str, Any]) -> ListKey:
        key = self.ledger.list_key(list_id) if policy.is_id(list_id) else None
        if key is None:
            self._refuse(Refusal.UNKNOWN_LIST, now, context)
        if not key.active:
            self._refuse(Refusal.SHREDDED, now, context)
        return key

    def _record_refusal(
        self,
        writer: LedgerWriter,
        code: str,
        now: datetime,
        context: dict[str, Any],
        alerts: list[AlertRow | None],
    ) -> None:
        """The refusal's entry; and, when it is the holder's threshold-th refusal within
        the hour, one critical alert for that hour."""
        writer.append(Kind.REFUSE, now, outcome="refused", reason=code, **context)
        holder = context.get("holder_user_id")
        if holder is None or code == UNAVAILABLE:
            return
        refusals = writer.count(
            Kind.REFUSE, now - HOUR, holder_user_id=holder, exclude_reason=UNAVAILABLE
        )
        if refusals >= self.config.refusal_alert_threshold:
            alerts.append(
                self.channel.record(
                    writer,
                    now,
                    AlertKind.REFUSALS,
                    f"holder {holder} ({context.get('holder_role')}): {refusals} refusals "
                    f"within the hour, the last {code}",
                    holder_user_id=holder,
                    once_per=HOUR,
                )
            )

    def _refuse(
        self,
        code: str,
        now: datetime,
        context: dict[str, Any],
        *,
        alert: tuple[AlertKind, str] | None = None,
    ) -> NoReturn:
        alerts: list[AlertRow | None] = []
        with self.ledger.writing() as writer:
            self._record_refusal(writer, code, now, context, alerts)
            if alert is not None:
                kind, summary = alert
                holder = context.get("holder_user_id")
                alerts.append(
                    self.channel.record(
                        writer,
                        now,
                        kind,
                        summary,
                        holder_user_id=holder,
                        list_id=context.get("list_id"),
                        row_id=context.get("row_id"),
                        once_per=HOUR,
                    )
                )
        self.channel.publish(alerts)
        raise CustodyRefused(code)

    def _unavailable(self, exc: Exception, now: datetime, context: dict[str, Any]) -> NoReturn:
        with self.ledger.writing() as writer:
            self._record_refusal(writer, UNAVAILABLE, now, context, [])
        raise CustodyUnavailable(f"keyring: {exc}") from None

    def _ask_keyring[T](self, call: Callable[[], T], now: datetime, context: dict[str, Any]) -> T:
        try:
            return call()
        except KeyringUnavailable as exc:
            self._unavailable(exc, now, context)
        except KeyGone:
            # The ledger says the list is active: its key went missing outside custody.
            list_id = context.get("list_id")
            self._refuse(
                Refusal.CANNOT_OPEN,
                now,
                context,
                alert=(AlertKind.KEY_MISSING, f"list {list_id}: active, but not in the keyring"),
            )

    # -- for the CLI and the server --------------------------------------------------------

    def custody_public_key(self) -> str:
        """The custody signing key's public half: what checks certificates and the head."""
        return self.ledger.public_pem()

    def head(self) -> Head:
        return self.ledger.head()

    def verify_ledger(self) -> Verification:
        return self.ledger.verify()

    def entries(self, *, after: int = 0, limit: int | None = None) -> list[Entry]:
        return self.ledger.entries(after=after, limit=limit)

    def alerts(self, *, after: int = 0, limit: int | None = None) -> list[AlertRow]:
        return self.ledger.alerts(after=after, limit=limit)
