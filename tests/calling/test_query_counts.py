"""The SQL one "next call" and one outcome cost, request and all (session, account,
roles, the checkout, the grant, the reveal and its event, the page), pinned: these two
requests are what every operator makes all day, and bench/calling.py's p95 goal
(≤ 100 ms at 100 operators) has little room. A new statement on either path fails here;
if it is needed, change the number and measure the benchmark again (docs/benchmarks.md,
"Calling")."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.calling.conftest import running_campaign
from tests.conftest import verified_client
from yobikake.audit.models import Event

# Statements per request, test savepoints left out. PostgreSQL appends an audit event in
# one statement where SQLite takes three (audit/services.py).
NEXT_CALL = {"sqlite": 25, "postgresql": 21}
OUTCOME = {"sqlite": 16, "postgresql": 12}
# Each event takes its turn on the audit chain's head, which every writer shares.
EVENTS = (2, 2)  # a next call, an outcome


def _statements(context: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in context.captured_queries
        if not re.match(r"(RELEASE )?SAVEPOINT", q["sql"])
    ]


def _listed(statements: list[str]) -> str:
    return "\n".join(f"  {n}. {sql[:160]}" for n, sql in enumerate(statements, 1))


@pytest.mark.parametrize("round_", [1, 2], ids=["first call of the day", "a later call"])
def test_next_call_and_outcome_make_a_fixed_number_of_statements(calling_day, world, round_):
    running_campaign(world, count=6, holdout_share=0)
    client = verified_client(world.operator)
    client.get(reverse("calling:operator"))
    for _ in range(round_):
        before = Event.objects.count()
        with CaptureQueriesContext(connection) as checkout:
            page = client.post(reverse("calling:next_call"))
        checked_out = Event.objects.count()
        call_target = re.search(r'data-call-target="(\d+)"', page.text)
        assert page.status_code == 200 and call_target, page.text[:500]
        with CaptureQueriesContext(connection) as outcome:
            client.post(
                reverse("calling:outcome", args=[call_target.group(1)]), {"code": "no_answer"}
            )
        recorded = Event.objects.count()
    vendor = connection.vendor
    next_call, done = _statements(checkout), _statements(outcome)
    assert len(next_call) == NEXT_CALL[vendor], _listed(next_call)
    assert len(done) == OUTCOME[vendor], _listed(done)
    assert (checked_out - before, recorded - checked_out) == EVENTS
