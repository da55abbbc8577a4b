"""The vault's cost under key custody: sealing fields as the importer does, against bare
AES-GCM (the limit) and against encrypting each field through OpenBao transit (what a
vault product does); and the latency of a reveal, which the custodian opens, with the
batch key warm in the custodian's memory and cold (unwrapped with the list's private key).

    .venv/bin/python bench/vault.py [--people 10000] [--reveals 300] [--no-postgres]

Prints one JSON line. Goals: sealing within 2x of bare AES-GCM and >= 8x faster than
transit (issue 4); reveal through the custodian, a separate process, p95 <= 5 ms warm on
SQLite and PostgreSQL (issue 19).

- bare: one AESGCM object, a fresh nonce per value, the value's associated data made
  beforehand.
- ours: what the importer does for the fields (intake/sealing.py): per batch of 250
  rows a fresh batch key wrapped to the list's RSA-3072 public key
  (`custody.sealing.seal_batch_key`), then `seal_fields` for every row (associated data:
  each column's prefix made once per list, the row id appended). The list's key pair is
  made in custody once per list (not timed here; the intake benchmark counts it).
- transit: the same values sent to OpenBao's transit `encrypt` in batches of 200, each
  with its associated data, with a file audit device on (OpenBao then logs every item).
- reveal: `vault.reveal` for a call on SQLite and PostgreSQL, the grant issued
  beforehand (not timed), the custodian a process of its own (`yobikake custodian
  serve`, mutual TLS, local keyring) with the benchmark's rates (bench/common.py). Warm:
  people of two batches whose keys the custodian has unwrapped (a first pass, not
  timed); cold: each reveal a person of a batch not opened before, so the custodian
  unwraps its key (RSA-OAEP, 3072 bits). Beside it, the floors a reveal stands on: one
  audit event appended and committed alone (`audit_write_alone`), and the custodian's
  open alone, warm, asked directly through the port (`custodian_open_alone`).

The application's and the custodian's calling hours are the whole day for the run; both
still allow calls Monday to Saturday only (Asia/Tokyo): on a Sunday there the reveals
are refused.
"""

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import confirm_holders, machine, run_child

TRANSIT_BATCH = 200
# The figures' associated data names a list and an insurer, as a stored row's does.
LIST_ID, INSURER_ID = 1, 1


def _rows(people: int) -> list[tuple[str, ...]]:
    """Synthetic people's sealed fields, in the importer's column order."""
    from yobikake.intake.sealing import SEALED_FIELDS
    from yobikake.synth.people import synthetic_people

    def text(value: object) -> str:
        return value.isoformat() if hasattr(value, "isoformat") else str(value or "")

    return [
        tuple(text(getattr(p, field)) for field in SEALED_FIELDS)
        for p in synthetic_people(people, seed=1, fiscal_year=2024, phone_share=1.0)
    ]


def sealing(people: int) -> dict[str, float]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from yobikake.custody import sealing as custody_sealing
    from yobikake.custody.protocol import field_aad, field_aad_prefix
    from yobikake.intake.sealing import BATCH, ROWS_PER_LIST, SEALED_FIELDS, TABLE
    from yobikake.vault import devserver
    from yobikake.vault.adapters.openbao import OpenBaoKeyService
    from yobikake.vault.ports import KeyKind

    rows = _rows(people)
    first_id = LIST_ID * ROWS_PER_LIST
    values = [
        (field_aad(TABLE, column, first_id + n, LIST_ID, INSURER_ID), value.encode())
        for n, row in enumerate(rows, 1)
        for column, value in zip(SEALED_FIELDS, row, strict=True)
        if value
    ]
    fields = len(values)

    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    start = time.perf_counter()
    for aad, value in values:
        nonce = os.urandom(12)
        aead.encrypt(nonce, value, aad)
    bare = time.perf_counter() - start

    # The list's key pair, made in custody when the list is: only its public half here.
    public_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=3072)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    start = time.perf_counter()
    prefixes = tuple(field_aad_prefix(TABLE, c, LIST_ID, INSURER_ID) for c in SEALED_FIELDS)
    for batch_id, offset in enumerate(range(0, len(rows), BATCH), 1):
        batch_key, _wrapped = custody_sealing.seal_batch_key(public_pem)
        batch_aead = AESGCM(batch_key)
        for n, row in enumerate(rows[offset : offset + BATCH], offset + 1):
            custody_sealing.seal_fields(
                batch_aead, prefixes, str(first_id + n).encode(), row, batch_id
            )
    ours = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as audit_dir:
        audit_log = Path(audit_dir) / "audit.log"
        server = devserver.start(audit_log=audit_log)
        try:
            transit = OpenBaoKeyService(server.client())
            transit.create_key("bench", KeyKind.WRAPPING)
            client = server.client().secrets.transit
            start = time.perf_counter()
            for i in range(0, fields, TRANSIT_BATCH):
                batch = values[i : i + TRANSIT_BATCH]
                client.encrypt_data(
                    name="bench",
                    batch_input=[
                        {
                            "plaintext": base64.b64encode(v).decode(),
                            "associated_data": base64.b64encode(a).decode(),
                        }
                        for a, v in batch
                    ],
                )
            transit_s = time.perf_counter() - start
            audit_bytes = audit_log.stat().st_size
        finally:
            server.stop()

    def per_field(seconds: float) -> float:
        return round(seconds / fields * 1e6, 2)

    return {
        "fields": fields,
        "batches": -(-len(rows) // BATCH),
        "bare_aes_gcm_us_per_field": per_field(bare),
        "ours_us_per_field": per_field(ours),
        "transit_batched_with_file_audit_us_per_field": per_field(transit_s),
        "transit_audit_log_bytes": audit_bytes,
        "ours_ratio_to_bare": round(ours / bare, 2),
        "transit_ratio_to_ours": round(transit_s / ours, 1),
    }


def child(reveals: int) -> dict[str, float]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from yobikake.accounts import authz
    from yobikake.accounts.models import Organization, RoleAssignment, User
    from yobikake.accounts.permissions import OrganizationKind, Role
    from yobikake.audit.services import append_event
    from yobikake.audit.tags import AuditTag
    from yobikake.custody.sealing import batch_of
    from yobikake.intake.models import Target
    from yobikake.intake.sealing import BATCH
    from yobikake.intake.services import load_target_list
    from yobikake.synth.people import synthetic_people
    from yobikake.tenancy.models import Insurer
    from yobikake.vault.custodian import custodian
    from yobikake.vault.models import Purpose
    from yobikake.vault.reveal import open_request, reveal
    from yobikake.vault.services import issue_grant

    call_command("migrate", verbosity=0)
    insurer = Insurer.objects.create(number="219014", name="ベンチ市", kind="municipality")

    def user(name: str, kind: str, role: Role, **org: object) -> User:
        organization = Organization.objects.create(name=name, kind=kind, **org)
        account = User.objects.create(
            username=name,
            organization=organization,
            expires_at=timezone.now() + timezone.timedelta(days=30),
        )
        authz.seal_user(account)
        authz.seal(RoleAssignment.objects.create(user=account, role=role, status="active"))
        return account

    staff = user("staff", OrganizationKind.INSURER, Role.INSURER_STAFF, insurer=insurer)
    supervisor = user("supervisor", OrganizationKind.CALL_CENTRE, Role.SUPERVISOR)
    operator = User.objects.create(
        username="operator",
        organization=supervisor.organization,
        expires_at=supervisor.expires_at,
    )
    authz.seal_user(operator)
    authz.seal(RoleAssignment.objects.create(user=operator, role="operator", status="active"))
    confirm_holders([(operator.pk, "operator", None), (staff.pk, "insurer_staff", insurer.pk)])

    # Enough people for `reveals` of them in the first batches (warm) and one in each of
    # `reveals` batches after those (cold).
    warm_batches = -(-reveals // BATCH)
    people = synthetic_people(BATCH * (warm_batches + reveals), seed=2, fiscal_year=2024)
    target_list = load_target_list(actor=staff, insurer=insurer, fiscal_year=2024, people=people)
    by_batch: dict[int, list[Target]] = defaultdict(list)
    for target in Target.objects.filter(target_list=target_list).order_by("row_number"):
        by_batch[batch_of(bytes(target.name_kanji))].append(target)
    ordered = [by_batch[batch] for batch in sorted(by_batch)]
    warm = [t for batch in ordered[:warm_batches] for t in batch][:reveals]
    cold = [batch[0] for batch in ordered[warm_batches:]][:reveals]

    def timed(targets: list[Target]) -> list[float]:
        times = []
        for target in targets:
            issue_grant(actor=supervisor, holder=operator, target=target, purpose="call")
            start = time.perf_counter()
            reveal(operator, target, "call")
            times.append((time.perf_counter() - start) * 1000)
        return times

    def audit_writes() -> list[float]:
        """A floor under a reveal: one audit event appended and committed, alone."""
        times = []
        for _ in warm:
            start = time.perf_counter()
            with transaction.atomic(durable=True):
                append_event(tag=AuditTag.LOGOUT, actor=operator)
            times.append((time.perf_counter() - start) * 1000)
        return times

    def custodian_opens() -> list[float]:
        """The other floor: the custodian's open of a call's fields, warm, asked
        directly through the port (the round trip with the custodian's decision, its
        ledger entry and the opening)."""
        times = []
        for target in warm:
            request = open_request(operator.pk, 1, target, Purpose.CALL)
            start = time.perf_counter()
            custodian().open(request)
            times.append((time.perf_counter() - start) * 1000)
        return times

    timed(warm)  # warm-up: connections, caches, the warm batches' keys in custody
    result: dict[str, float] = {}
    for label, times in (
        ("reveal_warm", timed(warm)),
        ("reveal_cold", timed(cold)),
        ("audit_write_alone", audit_writes()),
        ("custodian_open_alone", custodian_opens()),
    ):
        result[f"{label}_p50_ms"] = round(statistics.median(times), 2)
        result[f"{label}_p95_ms"] = round(statistics.quantiles(times, n=20)[18], 2)
    result["reveals_each"] = len(warm)
    result["cold_batches"] = len(cold)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--reveals", type=int, default=300)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.reveals)))
        return
    result: dict[str, object] = {
        "bench": "vault",
        **machine(),
        "goals": {
            "ours_ratio_to_bare": "<= 2",
            "transit_ratio_to_ours": ">= 8",
            "reveal_warm_p95_ms": "<= 5",
        },
        "sealing": sealing(args.people),
    }
    # The application's own hourly reveal budget lifted and its calling hours the whole
    # day, as the custodian's are (bench/common.py): a reveal within calling hours,
    # whatever the hour the bench runs (outside them each reveal also looks for an open
    # off-hours alert). Each run gets a custodian of its own.
    env = {
        "YOBIKAKE_REVEAL_BUDGET_OPERATOR": str(10 * args.reveals),
        "YOBIKAKE_CALLING_HOURS": "0-24",
    }
    for backend in ("sqlite",) + (() if args.no_postgres else ("postgresql",)):
        result[f"reveal_{backend}"] = run_child(
            __file__, backend, ["--reveals", str(args.reveals)], env
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
