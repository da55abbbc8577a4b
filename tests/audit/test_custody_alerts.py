"""The security officer's queue shows custody's own alerts, fetched from the custodian:
whatever the application's tables hold, and saying so plainly when custody is away."""

from django.db import connection

from tests.custody import server_fixture
from yobikake.audit.models import Alert
from yobikake.audit.services import record_denial
from yobikake.audit.tags import AuditTag
from yobikake.custody.protocol import Heartbeat
from yobikake.vault import custodian as port
from yobikake.vault.devserver import free_port


def raise_in_custody(custody, user_id: int) -> None:
    """A critical alert on custody's channel: a session custody never heard of."""
    assert custody.check_session(user_id, None, "sha256:" + "0" * 56) is False


def test_the_officer_sees_custody_s_alerts_beside_the_application_s(world, as_user, custody):
    raise_in_custody(custody, world.fed_admin.pk)
    page = as_user(world.security).get("/audit/alerts/", HTTP_ACCEPT_LANGUAGE="ja").text
    assert "鍵保管サービス（カストディアン）のアラート" in page
    assert "ログインの記録がないセッションが使われました" in page
    assert "custody-unreachable" not in page


def test_deleting_or_editing_the_application_s_alert_rows_hides_no_custody_alert(
    world, as_user, custody
):
    for _ in range(5):
        record_denial(tag=AuditTag.PERMISSION_DENY, actor=world.operator, reason="x")
    raise_in_custody(custody, world.operator.pk)
    # The insider's SQL on the application's database: rows rewritten, then gone.
    Alert.objects.update(summary="nothing to see", state=Alert.State.CLOSED)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_alert")
    assert not Alert.objects.exists()
    page = as_user(world.security).get("/audit/alerts/", HTTP_ACCEPT_LANGUAGE="ja").text
    assert "ログインの記録がないセッションが使われました" in page
    assert f"a session of user {world.operator.pk}" in page


def test_the_page_says_when_custody_cannot_be_reached(world, as_user, tmp_path, monkeypatch):
    client = as_user(world.security)
    _, client_dir = server_fixture.init(tmp_path / "away")
    away = port.HttpCustodian(f"https://127.0.0.1:{free_port()}", client_dir)
    monkeypatch.setattr(port, "_build", lambda *args: away)
    response = client.get("/audit/alerts/", HTTP_ACCEPT_LANGUAGE="ja")
    assert response.status_code == 200
    assert "鍵保管サービス（カストディアン）に接続できないため" in response.text


def test_custody_s_silence_alerts_show_on_the_queue(world, as_user, custody):
    """A check that missed its interval, seen by the custodian's own watch."""
    from yobikake.custody.watch import Watch

    watch = Watch.of(custody.custodian)
    watch.up_since -= max(watch.intervals.values()) * 2
    custody.heartbeat(Heartbeat.APPLICATION)
    watch.check()
    page = as_user(world.security).get("/audit/alerts/", HTTP_ACCEPT_LANGUAGE="ja").text
    assert "定期点検が予定どおりに実行されていません" in page
    assert "アプリケーションからの死活通知が途絶えました" not in page
