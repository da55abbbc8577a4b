import threading
from collections import Counter

import pytest
from django.db import connection, transaction

from yobikake.audit.models import Event
from yobikake.audit.services import append_event
from yobikake.audit.tags import AuditTag
from yobikake.audit.verify import verify_log


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain(world):
    writers, each = 6, 25
    start = threading.Barrier(writers)
    errors = []

    def write(n):
        start.wait()
        try:
            for i in range(each):
                with transaction.atomic():
                    append_event(tag=AuditTag.LOGOUT, actor=None, details={"w": n, "i": i})
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    events = list(Event.objects.order_by("seq").values_list("seq", "prev_hash", "hash"))
    assert [seq for seq, _, _ in events] == list(range(1, writers * each + 1))
    # A fork is two events claiming the same predecessor.
    assert max(Counter(prev for _, prev, _ in events).values()) == 1
    report = verify_log()
    assert report.intact and report.checked == writers * each


def test_a_single_writer_appends_in_one_round_trip_on_postgresql(db):
    from django.test.utils import CaptureQueriesContext

    append_event(tag=AuditTag.LOGOUT, actor=None)
    with CaptureQueriesContext(connection) as queries:
        append_event(tag=AuditTag.LOGOUT, actor=None)
    expected = 1 if connection.vendor == "postgresql" else 3
    assert len(queries) == expected, [q["sql"][:60] for q in queries]


def test_a_wrong_guess_about_the_head_falls_back_to_the_lock(db):
    from yobikake.audit.services import _HEAD_ATTR

    append_event(tag=AuditTag.LOGOUT, actor=None)
    with pytest.raises(RuntimeError), transaction.atomic():
        append_event(tag=AuditTag.LOGOUT, actor=None)  # rolled back: the guess goes stale
        raise RuntimeError
    append_event(tag=AuditTag.LOGOUT, actor=None)
    # Someone else moved the head meanwhile (here: a guess far off).
    from yobikake.audit.services import _Head

    setattr(connection, _HEAD_ATTR, _Head(999, "f" * 64, None))
    append_event(tag=AuditTag.LOGOUT, actor=None)
    assert list(Event.objects.values_list("seq", flat=True)) == [1, 2, 3]
    assert verify_log().intact
