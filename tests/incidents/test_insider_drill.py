"""`yobikake incident drill --insider`: the 2023 attack replayed with everything the
application domain holds, against a real custodian process, running and then stopped."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import TEST_CUSTODY, load_people
from tests.custody import server_fixture
from tests.custody.conftest import configure, openbao_settings
from yobikake.custody import cli
from yobikake.custody.config import Config
from yobikake.custody.openbao import APP_POLICY, policy
from yobikake.incidents import insider
from yobikake.intake.models import Target
from yobikake.synth.demo import demo_holders
from yobikake.vault import custodian as port

# Small budgets, so that the loop meets them in a few seconds: the burst limit below the
# holder's budget, as in the defaults (30 a minute, 60 an hour).
HOLDER_BUDGET = 10
DRILL_CUSTODY = {
    **TEST_CUSTODY,
    "synthetic": True,
    "holder_hourly": {"default": HOLDER_BUDGET},
    "centre_per_minute": 6,
    "refusal_alert_threshold": 3,
}


def _serve(root, monkeypatch):
    """The custodian process on `root`'s home (made, or as it was left), reached through
    the port. (The demo starts a custodian of its own where the settings say, which this
    test does not use.)"""
    server = server_fixture.start(root)
    client = server.client()
    monkeypatch.setattr(port, "_build", lambda *args: client)
    return server, client


def _drill(custody_home) -> dict:
    out = StringIO()
    call_command(
        "incident", "drill", "--insider", "--json", "--custody-home", str(custody_home), stdout=out
    )
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_the_insider_is_stopped_by_the_custodians_budgets_and_opens_no_one_when_it_is_stopped(
    canaries, tmp_path, monkeypatch
):
    root = tmp_path / "custody-process"
    home, _ = server_fixture.init(root)
    configure(home, **TEST_CUSTODY, synthetic=True)
    server, client = _serve(root, monkeypatch)
    call_command("demo", "--no-serve", stdout=StringIO())
    # The demo's roles confirmed in this custodian too, as the demo confirms them in its
    # own (its security officer's `custodian holder confirm`).
    cli.confirm_holders(home, demo_holders(), days=1)
    client.close()
    server.stop()
    configure(home, **DRILL_CUSTODY)
    server, client = _serve(root, monkeypatch)
    try:
        running = _drill(home)
    finally:
        client.close()
        server.stop()
    stopped = _drill(home)
    text = StringIO()
    call_command("incident", "drill", "--insider", "--custody-home", str(home), stdout=text)

    keys, ask, bulk = running["moves"]
    assert keys["values_read"] > 1000 and keys["symmetric_keys"] > 10
    assert keys["sealed_columns_not_tried"] == []
    assert keys["people_opened"] == 0  # nothing in the application domain opens a value
    assert 1 <= ask["people_opened"] <= HOLDER_BUDGET
    assert ask["stopped_by"] == "custody_centre_burst"
    assert "canaries" in ask["canaries"] and not ask["canaries"].startswith("the custodian did")
    assert 1 <= running["people_opened_before_first_alert"] <= HOLDER_BUDGET
    assert 0 < running["seconds_to_first_alert"] <= 60
    alert = running["first_alert"]
    assert alert["severity"] == "critical" and alert["kind"] == "centre_burst"
    assert alert["file"] == str(home / "alerts.log")
    assert str(home / "alerts.log") in running["measured_by"]
    # What the bulk move got is reported as it happened, and counted.
    export, probe = bulk["attempts"]
    # To a key of the insider's: custody sends an insurer's file to its confirmed key only.
    assert export["result"] == "refused: custody_recipient"
    assert export["people_opened"] == 0
    assert running["people_opened"] == ask["people_opened"] <= HOLDER_BUDGET
    assert "recipient" in {a["kind"] for a in map(json.loads, (home / "alerts.log").open())}
    assert probe["result"] == "opened 0 people" and "synthetic" in probe["means"]
    # Round the application's services: nothing of it in the application's own records.
    assert running["application_events"] == running["application_alerts"] == 0

    assert stopped["people_opened"] == 0
    assert stopped["seconds_to_first_alert"] is None and stopped["first_alert"] is None
    assert stopped["moves"][1]["stopped_by"] == "the custodian does not answer"
    assert {a["result"] for a in stopped["moves"][2]["attempts"]} == {
        "the custodian does not answer"
    }
    assert "people_opened: 0\n" in text.getvalue()
    # The running drill's alert stands: the stopped custodian raises none of its own.
    assert stopped["standing_alert"]["severity"] == "critical"
    assert "No new critical custody alert: #" in text.getvalue()


@pytest.mark.django_db
def test_the_insider_drill_refuses_a_real_installation(world):
    with pytest.raises(CommandError, match="demo installation"):
        call_command("incident", "drill", "--insider", stdout=StringIO())


@pytest.mark.django_db
def test_a_key_service_token_is_tried_on_custodys_openbao_keys_and_opens_only_what_it_may(
    openbao, world, tmp_path, monkeypatch
):
    """Custody's list keys in OpenBao transit: the drill's token opens every person when
    OpenBao lets it decrypt (a root token), and no one under the application's policy."""
    home = Config.init(tmp_path / "custody", synthetic=True).home
    keyring = openbao_settings(home, openbao)
    configure(home, keyring=keyring)
    custody = port.InProcess(home)
    monkeypatch.setattr(port, "_build", lambda *args: custody)
    try:
        load_people(world, 5)
        values, _ = insider.read_sealed_values()
        batches = insider.by_batch(values)
        mount = keyring["mount"]
        root, opened = insider.try_openbao(
            batches, addr=openbao.addr, token=openbao.token, mount=mount
        )
        assert opened == set(Target.objects.values_list("pk", flat=True)) and len(opened) == 5
        assert root and all(line.endswith("DECRYPTED") for line in root)

        # The production profile's policy for the application's token, on this mount.
        client = openbao.client()
        app = f"{mount}-{APP_POLICY}"
        client.sys.create_or_update_policy(name=app, policy=policy(APP_POLICY, custody_mount=mount))
        token = client.auth.token.create(policies=[app])["auth"]["client_token"]
        refused, opened = insider.try_openbao(batches, addr=openbao.addr, token=token, mount=mount)
        assert opened == set()
        assert refused and all(line.endswith("refused (Forbidden)") for line in refused)
    finally:
        custody.close()
