"""What every Yobikake process checks as it starts, on a home made by the real
`yobikake migrate`: the append-only guards are in place (or it refuses, with a critical
alert), and the security-relevant settings and the installed code are what the log last
recorded (or an alert says what changed)."""

import json
import subprocess
from pathlib import Path

import pytest

from tests.audit.fresh import DRIVER_ERRORS, FreshHome

EVENT_ROW = (
    "INSERT INTO audit_event (seq, at, tag, outcome, reason, actor_username, actor_roles,"
    " purpose, client_ip, details, prev_hash, hash, mac) VALUES (1000, '2026-01-01 00:00:00',"
    " 'auth:session:logout', 'allowed', '', '', '', '', '', '', '', '', '')"
)
CHECKPOINT_ROW = (
    "INSERT INTO audit_checkpoint (head_seq, head_hash, at, key_id, signature)"
    " VALUES (1000, '', '2026-01-01 00:00:00', 'x', '')"
)


def test_a_home_made_by_yobikake_migrate_keeps_events_and_checkpoints_append_only(
    fresh_home: FreshHome,
):
    fresh_home.migrate()
    fresh_home.sql(EVENT_ROW)
    fresh_home.sql(CHECKPOINT_ROW)
    statements = [
        "UPDATE audit_event SET reason = 'edited' WHERE seq = 1000",
        "DELETE FROM audit_event WHERE seq = 1000",
        "UPDATE audit_checkpoint SET key_id = 'edited'",
        "DELETE FROM audit_checkpoint",
    ]
    if fresh_home.postgresql:
        statements += ["TRUNCATE audit_event", "TRUNCATE audit_checkpoint"]
    for statement in statements:
        with pytest.raises(DRIVER_ERRORS, match="append-only"):
            fresh_home.sql(statement)
    assert fresh_home.sql("SELECT reason FROM audit_event WHERE seq = 1000") == [("",)]


def drop_one_guard(home: FreshHome) -> str:
    """What a database administrator does first: switch one guard off."""
    if home.postgresql:
        # Disabled, not dropped: the trigger is still listed but no longer fires.
        home.sql("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only_rows")
        return "audit_event_append_only_rows"
    home.sql("DROP TRIGGER audit_event_no_delete")
    return "audit_event_no_delete"


def started(home: FreshHome, *args: str, **env: str) -> subprocess.CompletedProcess:
    try:
        return home.run(*args, timeout=60, **env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)} kept running without its append-only guard")


def guard_alerts(home: FreshHome) -> list[tuple]:
    return home.sql(
        "SELECT severity, state, summary FROM audit_alert"
        " WHERE rule = 'append_only_guard_missing' ORDER BY id"
    )


@pytest.mark.usefixtures("fresh_custody")
def test_every_process_refuses_to_start_without_a_guard_and_raises_a_critical_alert(
    fresh_home: FreshHome,
):
    fresh_home.migrate()
    guard = drop_one_guard(fresh_home)

    worker = started(fresh_home, "db_worker", "--no-startup-delay")
    web = started(fresh_home, "-c", "import yobikake.wsgi")
    demo = started(fresh_home, "demo", "--no-serve", "--no-lists")
    for process in (worker, web, demo):
        assert process.returncode != 0
        assert f"append-only guard missing: {guard}" in process.stderr
    assert not fresh_home.sql("SELECT id FROM accounts_user")  # the demo loaded nothing

    verify = started(fresh_home, "audit", "verify")
    assert verify.returncode == 1
    assert f"append-only guard missing: {guard}" in verify.stderr
    assert "intact" not in verify.stdout

    alerts = guard_alerts(fresh_home)
    assert len(alerts) == 4
    assert {(severity, state) for severity, state, _ in alerts} == {("critical", "open")}
    assert all(guard in summary for _, _, summary in alerts)
    raised = fresh_home.sql("SELECT details FROM audit_event WHERE tag = 'alert:record:raise'")
    assert sorted(json.loads(d)["rule"] for (d,) in raised) == ["append_only_guard_missing"] * 4

    # The operator puts the guards back (on the record), and everything starts again.
    install = started(fresh_home, "audit", "guards", "--install")
    assert install.returncode == 0, install.stderr
    assert fresh_home.sql(
        "SELECT count(*) FROM audit_event WHERE tag = 'audit:guards:install'"
    ) == [(1,)]
    web = started(fresh_home, "-c", "import yobikake.wsgi")
    assert web.returncode == 0, web.stderr
    verify = started(fresh_home, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("intact")
    alerts = guard_alerts(fresh_home)
    assert len(alerts) == 5 and alerts[-1][2].startswith("put back by audit guards --install")
    with pytest.raises(DRIVER_ERRORS, match="append-only"):
        fresh_home.sql("DELETE FROM audit_event")


def control_alerts(home: FreshHome) -> list[tuple]:
    return home.sql(
        "SELECT severity, summary FROM audit_alert WHERE rule = 'controls_changed' ORDER BY id"
    )


def changes(home: FreshHome) -> list[dict]:
    rows = home.sql(
        "SELECT details FROM audit_event WHERE tag = 'audit:settings:change' ORDER BY seq"
    )
    return [json.loads(details) for (details,) in rows]


@pytest.mark.usefixtures("fresh_custody")
def test_a_raised_reveal_budget_and_a_new_secret_are_recorded_and_alerted_at_the_next_start(
    fresh_home: FreshHome, installed_copy: Path
):
    fresh_home.migrate()
    assert fresh_home.run("audit", "verify").returncode == 0
    assert fresh_home.run("audit", "verify").returncode == 0
    assert control_alerts(fresh_home) == []
    starts = fresh_home.sql("SELECT details FROM audit_event WHERE tag = 'audit:process:start'")
    assert len(starts) == 2
    assert json.loads(starts[0][0])["reveal_budget_operator"] == 60

    token = "s.insider-token-0123456789"
    loosened = {"YOBIKAKE_REVEAL_BUDGET_OPERATOR": "152", "OPENBAO_TOKEN": token}
    done = fresh_home.run("audit", "verify", **loosened)
    assert done.returncode == 0, done.stderr

    [(severity, summary)] = control_alerts(fresh_home)
    assert severity == "critical"
    assert "reveal_budget_operator 60 → 152" in summary
    assert "openbao_token changed" in summary
    recorded = {c["setting"]: c for c in changes(fresh_home)}
    assert set(recorded) == {"reveal_budget_operator", "openbao_token"}
    assert (
        recorded["reveal_budget_operator"]["old"],
        recorded["reveal_budget_operator"]["new"],
    ) == (
        60,
        152,
    )
    assert recorded["openbao_token"]["old"] is None
    assert recorded["openbao_token"]["new"].startswith("hmac:")
    everything = fresh_home.sql("SELECT * FROM audit_event") + fresh_home.sql(
        "SELECT * FROM audit_alert"
    )
    assert token not in repr(everything)

    # The same settings again: nothing new. Back to the defaults: noticed too.
    assert fresh_home.run("audit", "verify", **loosened).returncode == 0
    assert len(control_alerts(fresh_home)) == 1
    assert fresh_home.run("audit", "verify").returncode == 0
    assert len(control_alerts(fresh_home)) == 2
    assert "reveal_budget_operator 152 → 60" in control_alerts(fresh_home)[1][1]


@pytest.mark.usefixtures("fresh_custody")
def test_edited_code_is_noticed_at_the_next_start(fresh_home: FreshHome, installed_copy: Path):
    fresh_home.migrate()
    first = fresh_home.run("audit", "verify")
    assert first.returncode == 0, first.stderr
    assert control_alerts(fresh_home) == []

    with (installed_copy / "vault" / "services.py").open("a") as source:
        source.write("\nBUDGET_CHECK = False\n")
    second = fresh_home.run("audit", "verify")
    assert second.returncode == 0, second.stderr
    [(severity, summary)] = control_alerts(fresh_home)
    assert severity == "critical" and "code changed" in summary
    [change] = changes(fresh_home)
    assert change["setting"] == "code" and change["old"] != change["new"]

    (installed_copy / "templates" / "base.html").write_text("edited")
    fresh_home.run("audit", "verify")
    assert len(control_alerts(fresh_home)) == 2
