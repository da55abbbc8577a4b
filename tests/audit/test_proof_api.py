"""Insurers fetch the heads custody countersigned and RFC 6962 proofs through the API,
and check them with custody's public key and the standalone checker alone."""

import json
import subprocess
import sys

import pytest
from django.test import Client

from tests.audit.helpers import fill_log
from tests.audit.test_witness import rewrite_as_insider
from tests.tenancy.test_api import bearer
from yobikake.audit.models import Event
from yobikake.audit.services import append_event
from yobikake.audit.tags import AuditTag
from yobikake.audit.witness import submit_head
from yobikake.custody import merkle

pytestmark = pytest.mark.django_db


@pytest.fixture
def log(world, custody):
    """Events of insurer A among others, in two countersigned heads; custody's key."""
    fill_log(5)
    ids = [
        append_event(tag=AuditTag.LIST_DENY, actor=world.staff_a, insurer_id=world.insurer_a.pk).seq
        for _ in range(3)
    ]
    first = submit_head()
    fill_log(9)
    second = submit_head()
    return ids, first, second, custody.custodian.custody_public_key()


def get(user, path, **params):
    return Client().get(f"/api/v1/audit/{path}", params, **bearer(user))


def test_an_insurer_checks_its_events_and_the_heads_with_the_custody_key_alone(world, log):
    ids, first, second, pem = log
    heads = get(world.staff_a, "heads").json()
    assert [h["size"] for h in heads] == [first.size, second.size]
    assert all(merkle.check(head, pem) == [] for head in heads)

    proof = get(world.staff_a, "proofs/inclusion", seq=ids[1]).json()
    assert proof["head"]["size"] == second.size
    assert merkle.check(proof, pem) == []
    older = get(world.staff_a, "proofs/inclusion", seq=ids[1], size=first.size).json()
    assert merkle.check(older, pem) == []
    consistency = get(
        world.staff_a, "proofs/consistency", first=first.size, second=second.size
    ).json()
    assert merkle.check(consistency, pem) == []
    assert merkle.check({**proof, "leaf": Event.objects.get(seq=1).hash}, pem) != []


def test_the_checker_script_checks_what_the_api_serves(world, log, tmp_path):
    ids, _, _, pem = log
    (tmp_path / "custody.pem").write_text(pem)
    (tmp_path / "proof.json").write_text(get(world.staff_a, "proofs/inclusion", seq=ids[0]).text)
    done = subprocess.run(
        [sys.executable, "-I", merkle.__file__, "--key", "custody.pem", "proof.json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout) == (0, "OK\n")


def test_after_the_insiders_rewrite_the_proofs_served_no_longer_check(world, log):
    ids, first, second, pem = log
    rewrite_as_insider(ids[0])
    proof = get(world.staff_a, "proofs/inclusion", seq=ids[0]).json()
    assert merkle.check(proof, pem) == [f"event {ids[0]} is not in the countersigned log"]
    consistency = get(
        world.staff_a, "proofs/consistency", first=first.size, second=second.size
    ).json()
    assert "the past was rewritten" in merkle.check(consistency, pem)[0]


def test_insurer_b_gets_404_for_insurer_as_event_and_the_try_is_recorded(world, log):
    ids, *_ = log
    assert get(world.staff_b, "proofs/inclusion", seq=ids[0]).status_code == 404
    assert get(world.staff_b, "proofs/inclusion", seq=10_000).status_code == 404
    denials = Event.objects.filter(tag=AuditTag.PROOF_DENY).order_by("seq")
    assert [(e.actor_user_id, e.reason, json.loads(e.details)) for e in denials] == [
        (world.staff_b.pk, "not_yours", {"seq": ids[0]}),
        (world.staff_b.pk, "missing", {"seq": None}),
    ]
    # The security officer may prove any event.
    assert get(world.security, "proofs/inclusion", seq=ids[0]).status_code == 200


def test_an_event_after_the_last_head_or_a_head_never_signed_is_refused(world, log):
    ids, first, second, _ = log
    append_event(tag=AuditTag.LIST_DENY, actor=world.staff_a, insurer_id=world.insurer_a.pk)
    newest = Event.objects.order_by("-seq").first().seq
    assert get(world.staff_a, "proofs/inclusion", seq=newest).status_code == 409
    assert (
        get(world.staff_a, "proofs/inclusion", seq=ids[0], size=first.size + 1).status_code == 404
    )
    assert (
        get(world.staff_a, "proofs/consistency", first=second.size, second=first.size).status_code
        == 400
    )


def test_heads_and_proofs_need_credentials(db):
    for path in ("heads", "proofs/inclusion?seq=1", "proofs/consistency?first=1"):
        assert Client().get(f"/api/v1/audit/{path}").status_code == 401
