"""Alerts by mail: sent to the security officer by custody's own SMTP settings, and a
mail that cannot be sent is itself an alert."""

import email
import email.policy
import socket
import socketserver
import threading

import pytest

from tests.custody.conftest import LIST_ID, configure, new_batch
from yobikake.custody.core import Custodian


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib to hand over one message."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink")
        while line := self.rfile.readline():
            command = line.decode().strip().upper()
            if command.startswith(("EHLO", "HELO")):
                self.reply("250 sink")
            elif command == "DATA":
                self.reply("354 go on")
                body = b""
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    body += data
                self.server.messages.append(
                    email.message_from_bytes(body, policy=email.policy.default)
                )
                self.reply("250 queued")
            elif command == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


@pytest.fixture
def smtp_sink():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.daemon_threads = True
    server.messages = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def smtp_settings(port: int) -> dict:
    return {
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "from": "custody@example.org",
        "to": ["security@example.org"],
    }


def open_a_canary(custodian: Custodian) -> None:
    batch = new_batch(custodian)
    custodian.register_canaries(LIST_ID, [1])
    custodian.open(batch.request(row_id=1))
    custodian.channel.flush()


def test_a_critical_alert_is_mailed_to_the_security_officer(home, clock, smtp_sink):
    configure(home, smtp=smtp_settings(smtp_sink.server_address[1]))
    custodian = Custodian(home, clock=clock)
    open_a_canary(custodian)
    [message] = smtp_sink.messages
    assert message["To"] == "security@example.org"
    assert message["Subject"] == "[呼びかけ 預託 critical] カナリア（おとりの住民）が開かれました"
    assert f"list {LIST_ID} row 1" in message.get_content()
    assert [a.kind for a in custodian.alerts()] == ["canary_opened"]
    custodian.close()


def test_a_mail_that_cannot_be_sent_is_itself_an_alert(home, clock):
    with socket.socket() as probe:  # a port with no one listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure(home, smtp=smtp_settings(port))
    custodian = Custodian(home, clock=clock)
    open_a_canary(custodian)
    kinds = [a.kind for a in custodian.alerts()]
    assert kinds == ["canary_opened", "mail_failed"]
    failed = custodian.alerts()[1]
    assert failed.severity == "critical"
    assert "alert #1 not mailed" in failed.summary
    assert "mail_failed" in (home / "alerts.log").read_text()
    assert custodian.verify_ledger().ok
    custodian.close()
