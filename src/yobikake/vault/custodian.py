"""The custodian port: how the application asks the custody domain for what only it can
do — a list's key pair, opening one person, producing an approved export's file
(encrypted to the insurer, in custody), opening synthetic organisations in bulk, the
canaries a campaign leaves out, shredding a list, countersigning the audit log's heads.

Adapters: `HttpCustodian`, the custodian process over HTTP with mutual TLS (the
application shows the client certificate the custody authority gave it, and trusts only
that authority's server certificate), and `InProcess`, a real `custody.core.Custodian`
on a home of its own, the fake for unit tests. tests/custody/test_port.py runs one
contract against both.

Whatever goes wrong between the two, nothing opens: an unreachable custodian, a TLS
failure, a timeout or a server error is `CustodyUnavailable`; a refusal is
`CustodyRefused` with its code (`protocol.Refusal`).
"""

import http.client
import json
import os
import select
import socket
import ssl
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings

from yobikake.custody.alerts import latest
from yobikake.custody.config import Config
from yobikake.custody.core import Custodian
from yobikake.custody.countersign import Countersigner
from yobikake.custody.pki import ClientFiles
from yobikake.custody.protocol import (
    ApprovalRequest,
    ApprovalState,
    AuditEvent,
    AuditHead,
    BulkOpened,
    BulkRequest,
    CustodyAlert,
    CustodyRefused,
    CustodyUnavailable,
    DeletionCertificate,
    FiledApproval,
    FileRequest,
    HeadSubmission,
    Opened,
    OpenRequest,
    ProducedFile,
    Refusal,
    ReportCursor,
    from_json,
    to_json,
)
from yobikake.custody.reconcile import Reconciler
from yobikake.custody.watch import Watch

# (connect, read) seconds: a reveal waits on an operator's screen, and a custodian that
# does not answer is treated as absent, not waited for.
TIMEOUT = (2.0, 10.0)
# A bulk open reads tens of megabytes and opens every value of them.
BULK_TIMEOUT = (2.0, 300.0)
POOL_SIZE = 16
# What every age file begins with (age-encryption.org/v1).
AGE_HEADER = b"age-encryption.org/v1\n"


class CustodianPort(Protocol):
    def create_list(self, list_id: int, insurer_id: int) -> str:
        """The list's key pair, made if needed; its public half (PEM), to seal to."""

    def public_key(self, list_id: int) -> str:
        """The list's public key (PEM)."""

    def register_canaries(self, list_id: int, row_ids: list[int]) -> None:
        """Which of the list's rows are canaries; once per list."""

    def leave_out(self, list_id: int, campaign_id: int) -> frozenset[int]:
        """The rows of the list a campaign must not queue."""

    def open(self, request: OpenRequest) -> Opened:
        """One person's fields for one justified request, or `CustodyRefused`."""

    def open_bulk(self, request: BulkRequest) -> BulkOpened:
        """Synthetic organisations' rows opened at once, by row id, on a synthetic
        custodian; or `CustodyRefused`."""

    def produce_file(self, request: FileRequest) -> ProducedFile:
        """An approved export's file, filled in custody and encrypted to the insurer's
        age key: only its ciphertext comes back; or `CustodyRefused`."""

    def shred(self, list_id: int) -> DeletionCertificate:
        """Destroy the list's private key; the custody key signs the certificate."""

    def report_cursor(self) -> ReportCursor:
        """Where the custodian's copy of the audit log ends."""

    def report_events(self, events: list[AuditEvent]) -> ReportCursor:
        """Report the audit events that follow the cursor (none: a sign of life)."""

    def alerts(self) -> list[CustodyAlert]:
        """The latest alerts on custody's own channel, newest last."""

    def heartbeat(self, source: str) -> None:
        """Say that `source` (`protocol.Heartbeat`) is alive, or has just run."""

    def record_login(self, user_id: int, event_seq: int, session: str) -> None:
        """Tell custody of a login as it happens: the account, its audit event and the
        digest of the new session's key (`sha256:` and 56 hex digits)."""

    def record_logout(self, user_id: int, session: str) -> None:
        """Tell custody the session was logged out of: it is not honoured again."""

    def check_session(self, user_id: int, event_seq: int | None, session: str) -> bool:
        """Whether custody was told of the login that made this session (when not, it
        raises its own critical alert)."""

    def latest_head(self) -> AuditHead:
        """The audit log's last head the custodian countersigned (size 0: none yet)."""

    def audit_heads(self, after_size: int) -> list[AuditHead]:
        """Countersigned heads larger than `after_size`, smallest first, a page of them."""

    def countersign(self, submission: HeadSubmission) -> AuditHead:
        """Have a new head countersigned, or `CustodyRefused` (`WITNESS_MOVED`: proved
        from another head than the last; `WITNESS_INCONSISTENT`: the past was rewritten,
        and custody has raised its alert)."""

    def file_approval(self, request: ApprovalRequest) -> FiledApproval:
        """File what an approver approved; it opens nothing until the approver confirms
        it on the custodian's own page (`FiledApproval.url`) with their passkey."""

    def approval_state(self, approval_id: int) -> ApprovalState:
        """Whether a filed approval is confirmed in custody."""

    def revoke_holder(self, user_id: int, role: str) -> int:
        """The role is taken away: custody stops opening for it at once."""

    def close(self) -> None:
        """Let go of what the adapter holds open (connections, the ledger)."""


class _Connection:
    """One keep-alive TLS connection to the custodian. A request goes out in one write,
    headers and body together (`http.client` writes them apart, and each write wakes
    the custodian); `http.client` reads the answer."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, connect: float) -> None:
        raw = socket.create_connection((host, port), timeout=connect)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock = context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise

    def exchange(self, request: bytes, method: str, timeout: float) -> tuple[int, bytes, bool]:
        """Send `request` (a whole HTTP/1.1 request); the answer's status, body and
        whether the custodian closes the connection after it."""
        self.sock.settimeout(timeout)
        self.sock.sendall(request)
        response = http.client.HTTPResponse(self.sock, method=method)
        try:
            response.begin()
            return response.status, response.read(), response.will_close
        finally:
            response.close()

    def dropped(self) -> bool:
        """Whether an idle connection can no longer be used: readable while nothing was
        asked (the custodian closed it, its keep-alive over, or sent what was not asked
        for)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self.sock.close()


class _Connections:
    """Keep-alive connections to one custodian, each used by one request at a time and
    put back after it, `keep` of them at most."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, keep: int) -> None:
        self._host, self._port, self._context = host, port, context
        self._keep = keep
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def take(self, connect_timeout: float) -> _Connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return _Connection(self._host, self._port, self._context, connect_timeout)
            if not conn.dropped():
                return conn
            conn.close()

    def give_back(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class HttpCustodian:
    """The custodian process, over HTTPS with the application's client certificate.
    Pooled connections: they stay open between reveals, so a reveal costs one request,
    not a handshake. Nothing from the environment (no proxy, CA bundle or netrc): only
    the custody authority is trusted."""

    def __init__(
        self,
        url: str,
        client_dir: Path,
        *,
        timeout: tuple[float, float] = TIMEOUT,
        bulk_timeout: tuple[float, float] = BULK_TIMEOUT,
    ):
        files = ClientFiles.of(client_dir)
        if not files.exist():
            raise CustodyUnavailable(
                f"{client_dir} has no custodian client certificate: run `yobikake custodian init`"
            )
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname:
            raise CustodyUnavailable(f"{url} is not an https:// address")
        self._origin = f"https://{parts.netloc}"
        self.timeout = timeout
        self.bulk_timeout = bulk_timeout
        context = ssl.create_default_context(cafile=str(files.ca))
        context.load_cert_chain(str(files.cert), str(files.key))
        self._connections = _Connections(parts.hostname, parts.port or 443, context, POOL_SIZE)
        self._host = parts.netloc

    def create_list(self, list_id: int, insurer_id: int) -> str:
        answer = self._call("POST", "/v1/lists", {"list_id": list_id, "insurer_id": insurer_id})
        return str(answer["public_key"])

    def public_key(self, list_id: int) -> str:
        return str(self._call("GET", f"/v1/lists/{list_id}/public-key")["public_key"])

    def register_canaries(self, list_id: int, row_ids: list[int]) -> None:
        self._call("POST", f"/v1/lists/{list_id}/canaries", {"rows": list(row_ids)})

    def leave_out(self, list_id: int, campaign_id: int) -> frozenset[int]:
        answer = self._call("POST", f"/v1/lists/{list_id}/leave-out", {"campaign_id": campaign_id})
        return frozenset(int(row) for row in answer["rows"])

    def open(self, request: OpenRequest) -> Opened:
        answer = self._call("POST", "/v1/open", request)
        return Opened(values=self._text(answer.get("values")), ledger_seq=int(answer["ledger_seq"]))

    def open_bulk(self, request: BulkRequest) -> BulkOpened:
        answer = self._call("POST", "/v1/open-bulk", request, timeout=self.bulk_timeout)
        rows = answer.get("values")
        if not isinstance(rows, dict):
            raise CustodyUnavailable(f"the custodian at {self.url} sent no rows")
        try:
            values = {int(row_id): self._text(row) for row_id, row in rows.items()}
        except ValueError:
            raise CustodyUnavailable(
                f"the custodian at {self.url} sent a row without an id"
            ) from None
        return BulkOpened(values=values, ledger_seq=int(answer["ledger_seq"]))

    def produce_file(self, request: FileRequest) -> ProducedFile:
        answer = from_json(
            self._call("POST", "/v1/export-file", request, timeout=self.bulk_timeout)
        )
        data, name = answer.get("data"), answer.get("name")
        if not isinstance(data, bytes) or not data.startswith(AGE_HEADER):
            raise CustodyUnavailable(f"the custodian at {self.url} sent no age file")
        if not isinstance(name, str):
            raise CustodyUnavailable(f"the custodian at {self.url} sent a file without a name")
        return ProducedFile(name=name, data=data, ledger_seq=int(answer["ledger_seq"]))

    def _text(self, values: Any) -> dict[str, str]:
        # Taken as sent, not through from_json: an opened value is a resident's text,
        # which may begin like protocol's encoding of bytes.
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise CustodyUnavailable(f"the custodian at {self.url} sent values that are not text")
        return dict(values)

    def shred(self, list_id: int) -> DeletionCertificate:
        return DeletionCertificate(
            **from_json(self._call("POST", f"/v1/lists/{list_id}/shred", {}))
        )

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/v1/health")

    def report_cursor(self) -> ReportCursor:
        return self._cursor(self._call("GET", "/v1/audit-events/cursor"))

    def report_events(self, events: list[AuditEvent]) -> ReportCursor:
        return self._cursor(self._call("POST", "/v1/audit-events", {"events": events}))

    def alerts(self) -> list[CustodyAlert]:
        rows = self._call("GET", "/v1/alerts").get("alerts")
        try:
            return [CustodyAlert(**row) for row in rows]  # type: ignore[union-attr]
        except (TypeError, AttributeError):
            raise CustodyUnavailable(f"the custodian at {self.url} sent no alerts") from None

    def heartbeat(self, source: str) -> None:
        self._call("POST", "/v1/heartbeats", {"source": source})

    def record_login(self, user_id: int, event_seq: int, session: str) -> None:
        body = {"user_id": user_id, "event_seq": event_seq, "session": session}
        self._call("POST", "/v1/logins", body)

    def record_logout(self, user_id: int, session: str) -> None:
        self._call("POST", "/v1/logouts", {"user_id": user_id, "session": session})

    def check_session(self, user_id: int, event_seq: int | None, session: str) -> bool:
        body = {"user_id": user_id, "event_seq": event_seq, "session": session}
        return self._call("POST", "/v1/sessions/check", body).get("known") is True

    def latest_head(self) -> AuditHead:
        return self._audit_head(self._call("GET", "/v1/audit-heads/latest"))

    def audit_heads(self, after_size: int) -> list[AuditHead]:
        heads = self._call("GET", f"/v1/audit-heads/after/{int(after_size)}").get("heads")
        if not isinstance(heads, list):
            raise CustodyUnavailable(f"the custodian at {self.url} sent no heads")
        return [self._audit_head(head) for head in heads]

    def countersign(self, submission: HeadSubmission) -> AuditHead:
        return self._audit_head(self._call("POST", "/v1/audit-heads", submission))

    def _audit_head(self, answer: Any) -> AuditHead:
        try:
            head = from_json(answer)
            signature = head["signature"]
            if not isinstance(signature, bytes):
                signature = b""  # the empty head before the first: nothing signed
            return AuditHead(int(head["size"]), str(head["root"]), str(head["at"]), signature)
        except (KeyError, TypeError, ValueError):
            raise CustodyUnavailable(f"the custodian at {self.url} sent no audit head") from None

    def _cursor(self, answer: dict[str, Any]) -> ReportCursor:
        try:
            return ReportCursor(int(answer["through_seq"]), str(answer["hash"]))
        except (KeyError, TypeError, ValueError):
            raise CustodyUnavailable(f"the custodian at {self.url} sent no cursor") from None

    def file_approval(self, request: ApprovalRequest) -> FiledApproval:
        answer = self._call("POST", "/v1/approvals", request)
        return FiledApproval(int(answer["approval_id"]), str(answer["url"]))

    def approval_state(self, approval_id: int) -> ApprovalState:
        answer = self._call("GET", f"/v1/approvals/{approval_id}")
        return ApprovalState(
            int(answer["approval_id"]),
            str(answer["state"]),
            answer.get("confirmed_at"),
            answer.get("confirmed_by"),
        )

    def revoke_holder(self, user_id: int, role: str) -> int:
        return int(self._call("POST", f"/v1/holders/{user_id}/revoke", {"role": role})["revoked"])

    def close(self) -> None:
        self._connections.close()

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: tuple[float, float] | None = None,
    ) -> dict[str, Any]:
        connect, read = timeout or self.timeout
        head = f"{method} {self.url[len(self._origin) :]}{path} HTTP/1.1\r\nHost: {self._host}\r\n"
        payload = b""
        if body is not None:
            payload = json.dumps(to_json(body)).encode()
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        request = head.encode() + b"\r\n" + payload
        conn = None
        try:
            conn = self._connections.take(connect)
            status, raw, closes = conn.exchange(request, method, read)
        except (OSError, http.client.HTTPException) as exc:
            if conn is not None:
                conn.close()
            raise CustodyUnavailable(
                f"the custodian at {self.url} cannot be reached ({type(exc).__name__})"
            ) from exc
        if closes:
            conn.close()
        else:
            self._connections.give_back(conn)
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise CustodyUnavailable(f"the custodian at {self.url} answered {status} without JSON")
        if status in (400, 403):
            code = answer.get("code") or Refusal.BAD_REQUEST
            raise CustodyRefused(str(code), str(answer.get("message") or code))
        if status != 200:
            raise CustodyUnavailable(
                f"the custodian at {self.url} answered {status} {answer.get('code')}"
            )
        return answer


class InProcess:
    """A real custodian in this process, on its own home (a temporary one unless given):
    the fake for unit tests, with the custodian's own decisions, budgets and ledger.
    `synthetic`: a custodian of synthetic organisations, which may open them in bulk."""

    def __init__(self, home: Path | None = None, *, synthetic: bool = False) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if home is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="yobikake-custody-")
            home = Path(self._tmp.name) / "custody"
        Config.init(home, synthetic=synthetic)
        self.home = home
        self.custodian = Custodian(home)

    def create_list(self, list_id: int, insurer_id: int) -> str:
        return self.custodian.create_list(list_id, insurer_id)

    def public_key(self, list_id: int) -> str:
        return self.custodian.public_key(list_id)

    def register_canaries(self, list_id: int, row_ids: list[int]) -> None:
        self.custodian.register_canaries(list_id, row_ids)

    def leave_out(self, list_id: int, campaign_id: int) -> frozenset[int]:
        return self.custodian.leave_out(list_id, campaign_id)

    def open(self, request: OpenRequest) -> Opened:
        return self.custodian.open(request)

    def open_bulk(self, request: BulkRequest) -> BulkOpened:
        return self.custodian.open_bulk(request)

    def produce_file(self, request: FileRequest) -> ProducedFile:
        return self.custodian.produce_file(request)

    def shred(self, list_id: int) -> DeletionCertificate:
        return self.custodian.shred(list_id)

    def report_cursor(self) -> ReportCursor:
        return Reconciler.of(self.custodian).cursor()

    def report_events(self, events: list[AuditEvent]) -> ReportCursor:
        return Reconciler.of(self.custodian).receive(events)

    def alerts(self) -> list[CustodyAlert]:
        return [CustodyAlert(**row) for row in latest(self.custodian.ledger)]  # type: ignore[arg-type]

    def heartbeat(self, source: str) -> None:
        Watch.of(self.custodian).beat(source)

    def record_login(self, user_id: int, event_seq: int, session: str) -> None:
        Watch.of(self.custodian).record_login(user_id, event_seq, session)

    def record_logout(self, user_id: int, session: str) -> None:
        Watch.of(self.custodian).record_logout(user_id, session)

    def check_session(self, user_id: int, event_seq: int | None, session: str) -> bool:
        return Watch.of(self.custodian).check_session(user_id, session, event_seq)

    def latest_head(self) -> AuditHead:
        return Countersigner.of(self.custodian).latest()

    def audit_heads(self, after_size: int) -> list[AuditHead]:
        return Countersigner.of(self.custodian).heads(after_size)

    def countersign(self, submission: HeadSubmission) -> AuditHead:
        return Countersigner.of(self.custodian).countersign(submission)

    def file_approval(self, request: ApprovalRequest) -> FiledApproval:
        return self.custodian.file_approval(request)

    def approval_state(self, approval_id: int) -> ApprovalState:
        return self.custodian.approval_state(approval_id)

    def revoke_holder(self, user_id: int, role: str) -> int:
        return self.custodian.revoke_holder(user_id, role)

    def close(self) -> None:
        self.custodian.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def custodian() -> CustodianPort:
    """The custodian the settings name, one per process."""
    return _build(
        settings.YOBIKAKE_CUSTODIAN_URL, str(settings.YOBIKAKE_CUSTODIAN_CLIENT_DIR), os.getpid()
    )


@cache
def _build(url: str, client_dir: str, pid: int) -> HttpCustodian:
    # Keyed by the process too: a forked child (an import worker, a server worker) must
    # not write into the connections its parent holds open.
    return HttpCustodian(url, Path(client_dir))
