from django.db import transaction

from yobikake.audit.models import Event
from yobikake.audit.services import append_event
from yobikake.audit.tags import AuditTag


def head_seq() -> int:
    last = Event.objects.order_by("-seq").first()
    return last.seq if last else 0


def events_after(seq: int) -> list[Event]:
    return list(Event.objects.filter(seq__gt=seq).order_by("seq"))


def fill_log(count: int, actor=None) -> None:
    for n in range(count):
        with transaction.atomic():
            append_event(tag=AuditTag.LOGOUT, actor=actor, details={"n": n})
