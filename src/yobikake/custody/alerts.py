"""The custody alert channel: custody's own, so that no one in the application domain
can silence it. Every alert is a ledger entry (with a row in the ledger's alerts table),
a JSON line appended to `alerts.log` in the custody home, and, when custody.json names
them, a mail to the security officer (SMTP) and a POST to a webhook (JSON, signed with
HMAC-SHA256 when the webhook has a secret). A mail or webhook call that fails is itself
an alert, in the ledger and the log (and on the other channel).

Alerts are recorded inside the transaction of what raised them (`record`) and sent once
it commits (`publish`). Mail and the webhook go out from a background thread: an open that raises an
alert (a canary) answers as fast as any other, so the insider is not tipped off.
"""

import hashlib
import hmac
import json
import os
import queue
import smtplib
import ssl
import threading
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from email.message import EmailMessage
from enum import StrEnum

from yobikake.custody.config import Config, Smtp, Webhook
from yobikake.custody.ledger import AlertRow, Kind, Ledger, Writer


class Severity(StrEnum):
    INFO = "info"
    CRITICAL = "critical"


class AlertKind(StrEnum):
    CANARY_OPENED = "canary_opened"
    CENTRE_BUDGET = "centre_budget"
    CENTRE_BURST = "centre_burst"
    SEATS = "seats"
    BULK_OPENED = "bulk_opened"
    REFUSALS = "refusals"
    CANNOT_OPEN = "cannot_open"
    KEY_MISSING = "key_missing"
    CANARIES_AGAIN = "canaries_again"
    MAIL_FAILED = "mail_failed"
    # Reconciliation (reconcile.py)
    OPEN_UNRECORDED = "open_unrecorded"
    EVENT_WITHOUT_OPEN = "event_without_open"
    REPORT_MISSING = "report_missing"
    REPORT_BROKEN = "report_broken"
    # An export file asked for an age key the security officer has not confirmed.
    RECIPIENT = "recipient"
    WEBHOOK_FAILED = "webhook_failed"
    # The custodian's own start and stop (server.py), and what it watches (watch.py).
    CUSTODIAN_STARTED = "custodian_started"
    CUSTODIAN_STOPPED = "custodian_stopped"
    APPLICATION_SILENT = "application_silent"
    CHECK_MISSED = "check_missed"
    SESSION_UNBOUND = "session_unbound"
    LOGIN_UNREPORTED = "login_unreported"
    # The audit log's new head does not extend the last one custody countersigned.
    WITNESS_INCONSISTENT = "witness_inconsistent"
    # An open for a holder whose role custody has not confirmed (holders.py).
    HOLDER_UNKNOWN = "holder_unknown"
    # A confirmation tried with a passkey custody does not know, or on a spent link.
    APPROVAL_REFUSED = "approval_refused"
    # An export file asked for under an approval custody never had filed.
    APPROVAL_UNKNOWN = "approval_unknown"


# What the security officer reads in the mail's subject and `yobikake custodian alerts`.
LABELS = {
    AlertKind.CANARY_OPENED: "カナリア（おとりの住民）が開かれました",
    AlertKind.CENTRE_BUDGET: "コールセンター全体の1時間あたりの上限を超えました",
    AlertKind.CENTRE_BURST: "コールセンター全体の1分あたりの上限を超えました（大量取得の疑い）",
    AlertKind.SEATS: "1時間に開いた利用者の数が席数を超えました（利用者の偽装の疑い）",
    AlertKind.BULK_OPENED: "一括開封（エクスポート）が行われました",
    AlertKind.REFUSALS: "同じ利用者への拒否が続いています",
    AlertKind.CANNOT_OPEN: "開けない暗号文が送られました（改ざん・移動の疑い）",
    AlertKind.KEY_MISSING: "有効なリストの鍵が鍵保管庫にありません",
    AlertKind.CANARIES_AGAIN: "カナリアの再登録が試みられました",
    AlertKind.MAIL_FAILED: "アラートのメールを送れませんでした",
    AlertKind.OPEN_UNRECORDED: "アプリケーションの監査ログにない開封がありました（迂回の疑い）",
    AlertKind.EVENT_WITHOUT_OPEN: "鍵保管庫の台帳にない開封がアプリケーションの監査ログにあります",
    AlertKind.REPORT_MISSING: "アプリケーションから監査ログの報告が届いていません",
    AlertKind.REPORT_BROKEN: "報告された監査ログが前回の報告と続いていません（削除・改ざんの疑い）",
    AlertKind.RECIPIENT: "確認されていない鍵あてのエクスポートが求められました（持ち出しの疑い）",
    AlertKind.WEBHOOK_FAILED: "アラートをWebhookに送れませんでした",
    AlertKind.CUSTODIAN_STARTED: "鍵保管庫（カストディアン）が起動しました",
    AlertKind.CUSTODIAN_STOPPED: "鍵保管庫（カストディアン）が停止しました",
    AlertKind.APPLICATION_SILENT: "アプリケーションからの死活通知が途絶えました",
    AlertKind.CHECK_MISSED: "定期点検が予定どおりに実行されていません",
    AlertKind.SESSION_UNBOUND: (
        "ログインの記録がないセッションが使われました（セッション偽造の疑い）"
    ),
    AlertKind.LOGIN_UNREPORTED: (
        "鍵保管庫に届いていないログインが監査ログにあります（ログイン偽造の疑い）"
    ),
    AlertKind.WITNESS_INCONSISTENT: "監査ログが副署した先頭と整合しません（書き換えの疑い）",
    AlertKind.HOLDER_UNKNOWN: (
        "鍵保管サービスが確認していない利用者のための開封が求められました（なりすましの疑い）"
    ),
    AlertKind.APPROVAL_REFUSED: "鍵保管サービスでの承認の確認が拒否されました",
    AlertKind.APPROVAL_UNKNOWN: (
        "鍵保管サービスにない承認でのエクスポートが求められました（偽装の疑い）"
    ),
}
# An alert about a channel's failure is not sent again on that channel.
_NOT_ON = {AlertKind.MAIL_FAILED: "mail", AlertKind.WEBHOOK_FAILED: "webhook"}


class AlertChannel:
    def __init__(self, config: Config, ledger: Ledger, clock: Callable[[], datetime]) -> None:
        self._log_path = config.alerts_log
        self._smtp = config.smtp
        self._webhook = config.webhook
        self._ledger = ledger
        self._clock = clock
        self._log_lock = threading.Lock()
        self._mail: queue.Queue[AlertRow | None] = queue.Queue()
        self._mailer: threading.Thread | None = None

    def record(
        self,
        writer: Writer,
        at: datetime,
        kind: AlertKind,
        summary: str,
        *,
        severity: Severity = Severity.CRITICAL,
        holder_user_id: int | None = None,
        list_id: int | None = None,
        row_id: int | None = None,
        once_per: timedelta | None = None,
    ) -> AlertRow | None:
        """Record an alert in the ledger, inside `writer`'s transaction; None when one of
        the same kind for the same holder was raised within `once_per` (a flood of
        alerts would bury the one that matters)."""
        if once_per is not None and writer.alerted_since(kind, at - once_per, holder_user_id):
            return None
        seq = writer.append(
            Kind.ALERT,
            at,
            outcome=severity,
            reason=kind,
            holder_user_id=holder_user_id,
            list_id=list_id,
            row_id=row_id,
        )
        return writer.add_alert(
            at=at,
            severity=severity,
            kind=kind,
            summary=summary,
            holder_user_id=holder_user_id,
            list_id=list_id,
            ledger_seq=seq,
        )

    def publish(self, alerts: Iterable[AlertRow | None]) -> None:
        """Log, and queue for mail and the webhook, alerts whose transaction has
        committed."""
        for alert in alerts:
            if alert is None:
                continue
            self._log(alert)
            if self._smtp is not None or self._webhook is not None:
                self._start_mailer()
                self._mail.put(alert)

    def _log(self, alert: AlertRow) -> None:
        self._write_line(as_record(alert))

    def _write_line(self, record: dict[str, object]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._log_lock:
            fd = os.open(self._log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as log:
                log.write(line)

    def _start_mailer(self) -> None:
        if self._mailer is None or not self._mailer.is_alive():
            self._mailer = threading.Thread(
                target=self._mail_loop, name="custody-alert-mail", daemon=True
            )
            self._mailer.start()

    def _mail_loop(self) -> None:
        while (alert := self._mail.get()) is not None:
            try:
                self._send(alert)
            finally:
                self._mail.task_done()
        self._mail.task_done()

    def _send(self, alert: AlertRow) -> None:
        skip = _NOT_ON.get(AlertKind(alert.kind))
        smtp, webhook = self._smtp, self._webhook
        if smtp is not None and skip != "mail":
            try:
                _deliver(smtp, _message(smtp, alert))
            except Exception as exc:  # any failure to mail is itself an alert
                self._failed(AlertKind.MAIL_FAILED, alert, "not mailed", exc)
        if webhook is not None and skip != "webhook":
            try:
                _post(webhook, alert)
            except Exception as exc:  # and so is any failure of the webhook
                self._failed(AlertKind.WEBHOOK_FAILED, alert, "not posted", exc)

    def _failed(self, kind: AlertKind, alert: AlertRow, what: str, exc: Exception) -> None:
        summary = f"alert #{alert.id} {what}: {type(exc).__name__}: {str(exc)[:200]}"
        if alert.kind in _NOT_ON:
            # Both channels failing: the log says so, without alerts about alerts.
            self._write_line({"kind": kind, "summary": summary})
            return
        try:
            with self._ledger.writing() as writer:
                failed = self.record(writer, self._clock(), kind, summary)
            self.publish([failed])
        except Exception:  # the ledger itself failing: the log is all that is left
            self._write_line({"kind": kind, "summary": summary})

    def flush(self) -> None:
        """Wait until every queued mail is sent or recorded as failed."""
        if self._mailer is not None and self._mailer.is_alive():
            self._mail.join()

    def close(self) -> None:
        if self._mailer is not None and self._mailer.is_alive():
            self._mail.put(None)
            self._mailer.join(timeout=30)
        self._mailer = None


# The custody alerts the application's alert queue shows (`GET /v1/alerts`).
ALERTS_SHOWN = 200


def latest(ledger: Ledger) -> list[dict[str, object]]:
    """The latest `ALERTS_SHOWN` alerts, newest last, as `as_record` has them."""
    last = ledger.query("SELECT max(id) FROM alerts")[0][0] or 0
    return [as_record(alert) for alert in ledger.alerts(after=max(0, last - ALERTS_SHOWN))]


def as_record(alert: AlertRow) -> dict[str, object]:
    """An alert as JSON-ready data: a line of alerts.log, the webhook's body, and what
    the application's alert queue is sent (`GET /v1/alerts`)."""
    return {
        "id": alert.id,
        "at": alert.at,
        "severity": alert.severity,
        "kind": alert.kind,
        "label": LABELS.get(AlertKind(alert.kind), alert.kind),
        "summary": alert.summary,
        "holder_user_id": alert.holder_user_id,
        "list_id": alert.list_id,
        "ledger_seq": alert.ledger_seq,
    }


def _post(webhook: Webhook, alert: AlertRow) -> None:
    """POST the alert as JSON; with a secret, `X-Yobikake-Signature: sha256=<hex>` is the
    HMAC-SHA256 of the body, so the receiver can tell custody's alerts from forgeries."""
    body = json.dumps(as_record(alert), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "yobikake-custodian"}
    secret = webhook.secret()
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Yobikake-Signature"] = f"sha256={digest}"
    request = urllib.request.Request(webhook.url, data=body, headers=headers, method="POST")  # noqa: S310 - the URL is custody's setting
    # No proxy from the environment: only the address custody.json names.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        if not 200 <= response.status < 300:
            raise OSError(f"the webhook answered {response.status}")


def _message(smtp: Smtp, alert: AlertRow) -> EmailMessage:
    label = LABELS.get(AlertKind(alert.kind), alert.kind)
    message = EmailMessage()
    message["Subject"] = f"[呼びかけ 預託 {alert.severity}] {label}"
    message["From"] = smtp.sender
    message["To"] = ", ".join(smtp.to)
    message.set_content(
        f"{label}\n\n{alert.summary}\n\n"
        f"custody alert #{alert.id}, ledger entry #{alert.ledger_seq}, at {alert.at}\n"
    )
    return message


def _deliver(smtp: Smtp, message: EmailMessage) -> None:
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as server:
        if smtp.starttls:
            server.starttls(context=ssl.create_default_context())
        if smtp.user:
            server.login(smtp.user, smtp.password() or "")
        server.send_message(message)
