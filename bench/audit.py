"""Audit log throughput: append (single writer, one event per transaction) and verify,
on SQLite and on PostgreSQL, each beside a baseline measured in the same run, with a
custodian process of its own countersigning the log's head every 1,000 events.

    .venv/bin/python bench/audit.py [--events 1000000] [--appends 5000] [--no-postgres]

Prints one JSON line. Goals (issues 3 and 20): append >= 2,000 events/s with the heads
countersigned; a head countersigned per 1,000 events; verify 1,000,000 events against
every countersigned head in <= 10 s. The appended log is then extended to `--events` by
bulk loading events built by the same chain functions, 1,000 at a time, each thousand's
head countersigned by the custodian as the append path has it done (appending a million
through the service would only measure the append path again).
"""

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(__file__))
from common import machine, run_child


def child(events: int, appends: int) -> dict[str, float]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from yobikake.accounts.models import Organization, RoleAssignment, User
    from yobikake.audit import chain
    from yobikake.audit.keys import audit_keys
    from yobikake.audit.models import ChainHead, Event
    from yobikake.audit.services import append_event
    from yobikake.audit.tags import AuditTag
    from yobikake.audit.verify import PARALLEL_FROM, _rows, verify_log
    from yobikake.audit.witness import countersigned_heads, submit_head

    call_command("migrate", verbosity=0)
    org = Organization.objects.create(name="bench", kind="federation")
    actor = User.objects.create(username="bench", organization=org)
    RoleAssignment.objects.create(user=actor, role="security_officer", status="active")

    # Baseline: the same row written by a plain INSERT, no chain, no lock, no MAC, under
    # sequence numbers of its own (removed after each run; the log itself goes on).
    plain_from = 100_000_000
    table = Event._meta.db_table
    columns = [*chain.FIELDS, "hash", "mac"]
    insert = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    )
    from yobikake.audit import guards

    def row_values(seq: int, at: object, details: str, prev: str) -> list[object]:
        """An event's chained values as the benchmark writes them (chain.FIELDS order)."""
        return [
            seq,
            at,
            "auth:session:logout",
            "allowed",
            "",
            actor.pk,
            "bench",
            org.pk,
            "security_officer",
            None,
            None,
            None,
            None,
            "",
            "127.0.0.1",
            details,
            prev,
        ]

    def plain_row(n: int) -> list[object]:
        at = connection.ops.adapt_datetimefield_value(timezone.now())
        return [*row_values(plain_from + n, at, "", "0" * 64), "0" * 64, "0" * 64]

    def plain(n: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(insert, plain_row(n))

    def chained_by(who: User) -> Callable[[int], None]:
        # An actor of each run's own: the alert rules read the actor's recent events,
        # and the log (which goes on from run to run) should not make a later run slower.
        def chained(n: int) -> None:
            append_event(tag=AuditTag.LOGOUT, actor=who, details={"n": n})

        return chained

    def rate(write: Callable[[int], None], per_transaction: int) -> float:
        guards.remove(connection)
        Event.objects.filter(seq__gte=plain_from).delete()
        guards.install(connection)
        start = time.perf_counter()
        for first in range(0, appends, per_transaction):
            with transaction.atomic():
                for n in range(first, first + per_transaction):
                    write(n)
        return appends / (time.perf_counter() - start)

    figures: dict[str, float] = {}
    for label, per_transaction in (("commit_each", 1), ("batch_100", 100)):
        who = User.objects.create(username=f"bench-{label}", organization=org)
        RoleAssignment.objects.create(user=who, role="security_officer", status="active")
        base = rate(plain, per_transaction)
        ours = rate(chained_by(who), per_transaction)
        figures[f"append_{label}_events_per_s"] = round(ours)
        figures[f"append_{label}_plain_insert_per_s"] = round(base)
        figures[f"append_{label}_ratio_to_plain"] = round(ours / base, 3)
    guards.remove(connection)
    Event.objects.filter(seq__gte=plain_from).delete()
    guards.install(connection)
    appended = Event.objects.count()
    heads = countersigned_heads()
    # One per thousand, once the transaction holding the thousandth event commits (a
    # batch may end a few events later).
    if [h.size // 1000 for h in heads] != list(range(1, appended // 1000 + 1)):
        raise SystemExit(f"heads countersigned while appending: {[h.size for h in heads]}")
    if not verify_log(heads=heads).intact:
        raise SystemExit("the appended log does not verify")

    # The log extended to `events`, a thousand valid events at a time, each thousand's
    # head countersigned by the custodian (consistency proof from the last) and timed.
    guards.remove(connection)
    key = audit_keys().mac_key()
    last = Event.objects.order_by("-seq").first()
    prev = last.hash if last else chain.GENESIS_HASH
    at = timezone.now()
    stored_at = connection.ops.adapt_datetimefield_value(at)
    countersign_ms: list[float] = []
    for first in range(appended + 1, events + 1, 1000):
        rows = []
        for seq in range(first, min(first + 1000, events + 1)):
            values = row_values(seq, at, f'{{"n":{seq}}}', prev)
            digest = chain.event_hash(values, checked=False)
            rows.append((values[0], stored_at, *values[2:], digest, chain.event_mac(key, digest)))
            prev = digest
        with transaction.atomic(), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                copy_sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                with cursor.cursor.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(insert, rows)
        start = time.perf_counter()
        submit_head()
        countersign_ms.append((time.perf_counter() - start) * 1000)
    ChainHead.objects.filter(pk=1).update(seq=events, hash=prev)
    guards.install(connection)
    with connection.cursor() as cursor:  # as autovacuum would, after a bulk load
        cursor.execute(f"ANALYZE {table}")

    start = time.perf_counter()
    read = sum(1 for _ in _rows(1, events))  # one process reading what verify reads
    floor = time.perf_counter() - start
    start = time.perf_counter()
    chain_only = verify_log()
    chain_s = time.perf_counter() - start
    start = time.perf_counter()
    heads = countersigned_heads()
    report = verify_log(heads=heads)
    verify = time.perf_counter() - start
    if not (report.intact and chain_only.intact and report.checked == events == read):
        raise SystemExit(f"verify failed: {report.problems}")
    if report.heads != len(heads) or heads[-1].size != events:
        raise SystemExit(f"verify checked {report.heads} of {len(heads)} heads")
    countersign_ms.sort()
    return {
        **figures,
        "heads_countersigned": len(heads),
        "countersign_every_1000_mean_ms": round(sum(countersign_ms) / len(countersign_ms), 1),
        "countersign_every_1000_p95_ms": round(countersign_ms[int(len(countersign_ms) * 0.95)], 1),
        "countersign_every_1000_max_ms": round(countersign_ms[-1], 1),
        "verify_events": events,
        "verify_s": round(verify, 2),
        "verify_events_per_s": round(events / verify),
        "verify_heads_checked": report.heads,
        "verify_chain_only_s": round(chain_s, 2),
        "verify_workers": min(os.cpu_count() or 1, 8) if events >= PARALLEL_FROM else 1,
        "verify_read_only_one_process_s": round(floor, 2),
        "verify_ratio_to_read_only": round(verify / floor, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=5000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.events, args.appends)))
        return
    result: dict[str, object] = {
        "bench": "audit",
        **machine(),
        "goals": {
            "append_events_per_s": ">= 2000",
            "head_countersigned_every": 1000,
            "verify_1m_with_heads_s": "<= 10",
        },
    }
    for backend in ("sqlite",) + (() if args.no_postgres else ("postgresql",)):
        result[backend] = run_child(
            __file__, backend, ["--events", str(args.events), "--appends", str(args.appends)]
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
