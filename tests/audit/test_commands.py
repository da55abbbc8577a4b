import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.audit.helpers import fill_log
from yobikake.audit import chain
from yobikake.audit.models import Alert, Checkpoint, Event

pytestmark = pytest.mark.django_db


def export(since, capsys):
    call_command("audit", "export", "--since", since)
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_export_writes_json_lines_from_a_sequence_number_or_a_time(capsys):
    fill_log(5)
    lines = export("3", capsys)
    assert [line["seq"] for line in lines] == [3, 4, 5]
    event = Event.objects.get(seq=3)
    assert lines[0]["hash"] == event.hash and lines[0]["mac"] == event.mac
    # An archive can recompute the hash from the line alone.
    assert chain.event_hash([lines[0][n] for n in chain.FIELDS]) == event.hash

    tomorrow = (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert export(tomorrow, capsys) == []
    assert len(export("2000-01-01", capsys)) == 5


def test_export_refuses_nonsense():
    with pytest.raises(CommandError, match="sequence number or a date"):
        call_command("audit", "export", "--since", "last tuesday")


def test_checkpoint_signs_the_head_and_sweep_verifies(settings):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 1000
    fill_log(4)
    before = Checkpoint.objects.count()
    out = StringIO()
    call_command("audit", "checkpoint", stdout=out)
    assert Checkpoint.objects.count() == before + 1
    assert Checkpoint.objects.order_by("-id").first().head_seq == 4
    out = StringIO()
    call_command("audit", "sweep", stdout=out)
    assert "intact: 4 events" in out.getvalue()
    assert not Alert.objects.exists()
