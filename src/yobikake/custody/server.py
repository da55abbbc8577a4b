"""The custodian over HTTP: a small WSGI application (JSON in and out, `protocol`'s
encoding) in front of one `core.Custodian`, served by gunicorn with mutual TLS.

    POST /v1/lists                    {list_id, insurer_id}  -> {public_key}
    GET  /v1/lists/<id>/public-key                           -> {public_key}
    POST /v1/lists/<id>/canaries      {rows}                 -> {}
    POST /v1/lists/<id>/leave-out     {campaign_id}          -> {rows}
    POST /v1/open                     OpenRequest            -> Opened
    POST /v1/open-bulk                BulkRequest            -> BulkOpened (synthetic)
    POST /v1/export-file              FileRequest            -> ProducedFile
    POST /v1/lists/<id>/shred                                -> DeletionCertificate
    GET  /v1/audit-events/cursor                             -> ReportCursor
    POST /v1/audit-events             {events}               -> ReportCursor
    GET  /v1/health                                          -> {status, key_pool}
    GET  /v1/alerts                                          -> {alerts} (newest last)
    POST /v1/heartbeats               {source}               -> {}
    POST /v1/logins                   {user_id, event_seq, session} -> {}
    POST /v1/logouts                  {user_id, session}     -> {}
    POST /v1/sessions/check           {user_id, event_seq, session} -> {known}
    GET  /v1/audit-heads/latest                              -> AuditHead
    GET  /v1/audit-heads/after/<size>                        -> {heads}
    POST /v1/audit-heads              HeadSubmission         -> AuditHead
    POST /v1/approvals                ApprovalRequest        -> FiledApproval
    GET  /v1/approvals/<id>                                  -> ApprovalState
    POST /v1/holders/<id>/revoke      {role}                 -> {revoked}

The approvers' page (approver_page.py) is served by the same worker on a port of its
own, without client certificates: approvers' browsers reach it, the application does not
need to.

Integer keys (batch ids, list ids, row ids) travel as decimal strings, as JSON has it.
A refusal is 403 with its `code` (a `protocol.Refusal`); a request the custodian cannot
read is 400 with code `custody_bad_request`; a custodian that cannot reach its own
keyring answers 503 (`custody_unavailable`), and the application opens nothing.

Only a client holding the certificate the custody authority gave the application gets
past the TLS handshake (`cert_reqs = CERT_REQUIRED` against the custody CA alone). One
worker process, because the unwrapped batch keys and the alert channel live in one
`Custodian` (budgets are counted in the ledger, in one transaction per open); several
threads in it, so a slow request (a list's new key pair) does not hold up reveals;
connections kept alive, so a reveal pays for no handshake.
"""

import base64
import json
import re
import ssl
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from yobikake.custody import approver_page
from yobikake.custody.alerts import AlertKind, Severity, latest
from yobikake.custody.core import UNAVAILABLE, Custodian
from yobikake.custody.countersign import Countersigner
from yobikake.custody.pki import ServerFiles
from yobikake.custody.protocol import (
    ApprovalRequest,
    AuditEvent,
    BulkRequest,
    CustodyRefused,
    CustodyUnavailable,
    FileRequest,
    HeadSubmission,
    Holder,
    Justification,
    OpenRequest,
    Refusal,
    SealedCell,
    SealedRow,
    from_json,
    to_json,
)
from yobikake.custody.reconcile import Reconciler
from yobikake.custody.watch import Watch

DEFAULT_BIND = "127.0.0.1:8101"
THREADS = 8
# Longer than the application's idle gaps between reveals, so its pooled connections
# are rarely found closed.
KEEPALIVE_SECONDS = 75
MAX_BODY = 4 * 1024 * 1024
# A bulk open of an export's 50,000 rows is some 50 MB of base64 JSON; larger synthetic
# bulk opens are sent in parts.
MAX_BULK_BODY = 256 * 1024 * 1024

StartResponse = Callable[[str, list[tuple[str, str]]], object]


class BadRequest(Exception):
    pass


class _NotFound(Exception):
    pass


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{key} must be an integer")
    return value


def _ints(data: dict[str, Any], key: str) -> list[int]:
    value = data.get(key)
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise BadRequest(f"{key} must be a list of integers")
    return value


def _int_keys(value: Any) -> dict[int, Any]:
    """A JSON object keyed by ids (decimal strings, as JSON writes integer keys), keyed
    by the integers again; one spelling per id, so that two keys cannot name one."""
    if not isinstance(value, dict):
        raise TypeError("not an object")
    keyed: dict[int, Any] = {}
    for key, item in value.items():
        if not (key.isascii() and key.isdecimal() and str(int(key)) == key):
            raise TypeError(f"{key!r} is not an id")
        keyed[int(key)] = item
    return keyed


def _holder(data: Any) -> Holder:
    return Holder(user_id=data["user_id"], role=data["role"])


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _sealed(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("sealed")
    return value


def open_request(data: dict[str, Any]) -> OpenRequest:
    """An `OpenRequest` from its decoded JSON. Only its shape is checked here; the
    custodian judges the values (policy.request_refusal), and its refusal is on the
    ledger."""
    try:
        justification = data["justification"]
        return OpenRequest(
            justification=Justification(
                holder=_holder(justification["holder"]),
                purpose=justification["purpose"],
                grant_id=justification["grant_id"],
                insurer_id=justification["insurer_id"],
                list_id=justification["list_id"],
                table=justification["table"],
                row_id=justification["row_id"],
                fields=_tuple(justification["fields"]),
                event_id=justification.get("event_id"),
            ),
            wrapped_keys=_int_keys(data["wrapped_keys"]),
            sealed=_sealed(data["sealed"]),
        )
    except (KeyError, TypeError) as exc:
        raise BadRequest(f"not an open request ({type(exc).__name__}: {exc})") from None


def bulk_request(data: dict[str, Any]) -> BulkRequest:
    """A `BulkRequest` from its decoded JSON; as `open_request`, only its shape is
    checked here (policy.bulk_refusal judges the rest)."""
    try:
        rows = data["rows"]
        if not isinstance(rows, list):
            raise TypeError("rows")
        return BulkRequest(
            holder=_holder(data["holder"]),
            purpose=data["purpose"],
            approval_id=data["approval_id"],
            insurer_id=data["insurer_id"],
            fields=_tuple(data["fields"]),
            rows=[
                SealedRow(
                    list_id=row["list_id"],
                    insurer_id=row["insurer_id"],
                    table=row["table"],
                    row_id=row["row_id"],
                    sealed=_sealed(row["sealed"]),
                )
                for row in rows
            ],
            wrapped_keys={
                list_id: _int_keys(keys)
                for list_id, keys in _int_keys(data["wrapped_keys"]).items()
            },
            event_id=data.get("event_id"),
        )
    except (KeyError, TypeError) as exc:
        raise BadRequest(f"not a bulk request ({type(exc).__name__}: {exc})") from None


def _cell(value: Any) -> str | SealedCell:
    if isinstance(value, bytes):
        # from_json read a literal that began like protocol's encoding of bytes: as sent.
        return "b64:" + base64.b64encode(value).decode()
    if isinstance(value, dict):
        return SealedCell(**value)
    return value  # type: ignore[no-any-return]


def file_request(data: dict[str, Any]) -> FileRequest:
    """A `FileRequest` from its decoded JSON; only its shape is checked here
    (files.refusal and policy.bulk_refusal judge the rest)."""
    try:
        lines = data["lines"]
        if not isinstance(lines, list) or not all(isinstance(line, list) for line in lines):
            raise TypeError("lines")
        return FileRequest(
            bulk=bulk_request(data["bulk"]),
            name=data["name"],
            header=_tuple(data["header"]),
            lines=[[_cell(cell) for cell in line] for line in lines],
            recipient=data["recipient"],
            sort_by=_tuple(data["sort_by"]),
        )
    except (KeyError, TypeError) as exc:
        raise BadRequest(f"not a file request ({type(exc).__name__}: {exc})") from None


Handler = Callable[[Custodian, dict[str, Any], int], Any]


def _create_list(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    return {"public_key": custodian.create_list(_int(body, "list_id"), _int(body, "insurer_id"))}


def _public_key(custodian: Custodian, _body: dict[str, Any], list_id: int) -> Any:
    return {"public_key": custodian.public_key(list_id)}


def _canaries(custodian: Custodian, body: dict[str, Any], list_id: int) -> Any:
    custodian.register_canaries(list_id, _ints(body, "rows"))
    return {}


def _leave_out(custodian: Custodian, body: dict[str, Any], list_id: int) -> Any:
    return {"rows": sorted(custodian.leave_out(list_id, _int(body, "campaign_id")))}


def _open(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    return custodian.open(open_request(body))


def _open_bulk(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    return custodian.open_bulk(bulk_request(body))


def _export_file(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    return custodian.produce_file(file_request(body))


def _shred(custodian: Custodian, _body: dict[str, Any], list_id: int) -> Any:
    return custodian.shred(list_id)


def _report_cursor(custodian: Custodian, _body: dict[str, Any], _: int) -> Any:
    return Reconciler.of(custodian).cursor()


def _report(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    """The application's audit events since the cursor (reconcile.py)."""
    events = body.get("events")
    if not isinstance(events, list):
        raise BadRequest("events must be a list")
    names = AuditEvent.__dataclass_fields__
    try:
        parsed = [AuditEvent(**{name: event[name] for name in names}) for event in events]
    except (KeyError, TypeError) as exc:
        raise BadRequest(f"not an audit event ({type(exc).__name__}: {exc})") from None
    return Reconciler.of(custodian).receive(parsed)


def _latest_head(custodian: Custodian, _body: dict[str, Any], _: int) -> Any:
    return Countersigner.of(custodian).latest()


def _heads(custodian: Custodian, _body: dict[str, Any], after_size: int) -> Any:
    return {"heads": Countersigner.of(custodian).heads(after_size)}


def _countersign(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    """A new head of the application's audit log, with its consistency proof
    (countersign.py); countersign.check_submission judges the values."""
    try:
        names = HeadSubmission.__dataclass_fields__
        submission = HeadSubmission(**{name: body[name] for name in names})
    except KeyError as exc:
        raise BadRequest(f"not an audit log head (missing {exc})") from None
    return Countersigner.of(custodian).countersign(submission)


def _file_approval(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    names = ApprovalRequest.__dataclass_fields__
    try:
        request = ApprovalRequest(**{name: body[name] for name in names if name in body})
    except TypeError as exc:
        raise BadRequest(f"not an approval ({exc})") from None
    return custodian.file_approval(request)


def _approval_state(custodian: Custodian, _body: dict[str, Any], approval_id: int) -> Any:
    return custodian.approval_state(approval_id)


def _revoke_holder(custodian: Custodian, body: dict[str, Any], user_id: int) -> Any:
    role = body.get("role")
    if not isinstance(role, str):
        raise BadRequest("role must be a string")
    return {"revoked": custodian.revoke_holder(user_id, role)}


def _health(custodian: Custodian, _body: dict[str, Any], _: int) -> Any:
    pool = custodian.key_pool()
    return {"status": "ok"} if pool is None else {"status": "ok", "key_pool": pool}


def _alerts(custodian: Custodian, _body: dict[str, Any], _: int) -> Any:
    return {"alerts": latest(custodian.ledger)}


def _heartbeat(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    Watch.of(custodian).beat(body.get("source"))
    return {}


def _login(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    Watch.of(custodian).record_login(
        body.get("user_id"), body.get("event_seq"), body.get("session")
    )
    return {}


def _logout(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    Watch.of(custodian).record_logout(body.get("user_id"), body.get("session"))
    return {}


def _session(custodian: Custodian, body: dict[str, Any], _: int) -> Any:
    watch = Watch.of(custodian)
    known = watch.check_session(body.get("user_id"), body.get("session"), body.get("event_seq"))
    return {"known": known}


# (method, path, handler, largest body); a path's one group is the list id.
ROUTES: list[tuple[str, re.Pattern[str], Handler, int]] = [
    ("POST", re.compile(r"/v1/lists"), _create_list, MAX_BODY),
    ("GET", re.compile(r"/v1/lists/(\d+)/public-key"), _public_key, MAX_BODY),
    ("POST", re.compile(r"/v1/lists/(\d+)/canaries"), _canaries, MAX_BODY),
    ("POST", re.compile(r"/v1/lists/(\d+)/leave-out"), _leave_out, MAX_BODY),
    ("POST", re.compile(r"/v1/open"), _open, MAX_BODY),
    ("POST", re.compile(r"/v1/open-bulk"), _open_bulk, MAX_BULK_BODY),
    ("POST", re.compile(r"/v1/export-file"), _export_file, MAX_BULK_BODY),
    ("POST", re.compile(r"/v1/lists/(\d+)/shred"), _shred, MAX_BODY),
    ("GET", re.compile(r"/v1/health"), _health, MAX_BODY),
    ("GET", re.compile(r"/v1/audit-events/cursor"), _report_cursor, MAX_BODY),
    ("POST", re.compile(r"/v1/audit-events"), _report, MAX_BODY),
    ("GET", re.compile(r"/v1/alerts"), _alerts, MAX_BODY),
    ("POST", re.compile(r"/v1/heartbeats"), _heartbeat, MAX_BODY),
    ("POST", re.compile(r"/v1/logins"), _login, MAX_BODY),
    ("POST", re.compile(r"/v1/logouts"), _logout, MAX_BODY),
    ("POST", re.compile(r"/v1/sessions/check"), _session, MAX_BODY),
    ("GET", re.compile(r"/v1/audit-heads/latest"), _latest_head, MAX_BODY),
    ("GET", re.compile(r"/v1/audit-heads/after/(\d+)"), _heads, MAX_BODY),
    ("POST", re.compile(r"/v1/audit-heads"), _countersign, MAX_BODY),
    ("POST", re.compile(r"/v1/approvals"), _file_approval, MAX_BODY),
    ("GET", re.compile(r"/v1/approvals/(\d+)"), _approval_state, MAX_BODY),
    ("POST", re.compile(r"/v1/holders/(\d+)/revoke"), _revoke_holder, MAX_BODY),
]


def _unclean(custodian: Custodian) -> str:
    """What the start alert adds when the last run ended without its stop alert."""
    rows = custodian.ledger.query(
        "SELECT kind, at FROM alerts WHERE kind IN (?, ?) ORDER BY id DESC LIMIT 1",
        (AlertKind.CUSTODIAN_STARTED, AlertKind.CUSTODIAN_STOPPED),
    )
    if rows and rows[0][0] == AlertKind.CUSTODIAN_STARTED:
        return (
            f"; the run started {rows[0][1][:19]} UTC ended without stopping "
            "(killed, crashed or its host lost)"
        )
    return ""


class App:
    """The WSGI application over one custodian."""

    def __init__(self, custodian: Custodian) -> None:
        self.custodian = custodian

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            handler, list_id, max_body = self._route(
                environ["REQUEST_METHOD"], environ["PATH_INFO"]
            )
            body = self._body(environ, max_body)
            status, result = "200 OK", to_json(handler(self.custodian, body, list_id))
        except _NotFound:
            status, result = "404 Not Found", {"code": "not_found"}
        except BadRequest as exc:
            status, result = "400 Bad Request", {"code": Refusal.BAD_REQUEST, "message": str(exc)}
        except CustodyRefused as refused:
            status, result = "403 Forbidden", {"code": refused.code, "message": str(refused)}
        except CustodyUnavailable as exc:
            status, result = "503 Service Unavailable", {"code": UNAVAILABLE, "message": str(exc)}
        payload = json.dumps(result).encode()
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    @staticmethod
    def _route(method: str, path: str) -> tuple[Handler, int, int]:
        for route_method, pattern, handler, max_body in ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return handler, int(match.group(1)) if match.groups() else 0, max_body
        raise _NotFound

    @staticmethod
    def _body(environ: dict[str, Any], max_body: int) -> dict[str, Any]:
        if environ["REQUEST_METHOD"] != "POST":
            return {}
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if length > max_body:
            raise BadRequest("request too large")
        raw = environ["wsgi.input"].read(length) if length else b"{}"
        try:
            body = from_json(json.loads(raw))
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("not a JSON object")
        return body


def _one_tls_context() -> Callable[[Any, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """gunicorn asks for a context per connection; one, made once, is enough (and lets
    TLS sessions resume). TLS 1.3 only: both ends are ours."""
    made: list[ssl.SSLContext] = []
    lock = threading.Lock()

    def ssl_context(_config: Any, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        with lock:
            if not made:
                context = default()
                context.minimum_version = ssl.TLSVersion.TLSv1_3
                made.append(context)
            return made[0]

    return ssl_context


class Server(BaseApplication):  # type: ignore[misc]
    """gunicorn, configured here and nowhere else: no configuration file, no
    GUNICORN_CMD_ARGS, no control socket."""

    def __init__(self, home: Path, bind: str = DEFAULT_BIND, threads: int = THREADS) -> None:
        files = ServerFiles.of(home)
        self.home = home
        self.options: dict[str, Any] = {
            "bind": [bind],
            "workers": 1,
            "worker_class": "gthread",
            "threads": threads,
            "keepalive": KEEPALIVE_SECONDS,
            "certfile": str(files.cert),
            "keyfile": str(files.key),
            "ca_certs": str(files.ca),
            "cert_reqs": ssl.CERT_REQUIRED,
            "ssl_context": _one_tls_context(),
            "control_socket_disable": True,
            "proc_name": "yobikake-custodian",
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "worker_exit": self._worker_exit,
        }
        self.custodian: Custodian | None = None
        self._stopping = threading.Event()
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> App:
        # In the worker, after the fork: the custodian's state is the worker's.
        self.custodian = custodian = Custodian(self.home)
        reconciler, watch = Reconciler.of(custodian), Watch.of(custodian)
        config = custodian.config
        for name, loop, args in (
            ("custody-reconcile", reconciler.every, (config.reconcile_every, self._stopping)),
            ("custody-heartbeats", watch.every, (config.heartbeat_check, self._stopping)),
            ("custody-approver-page", approver_page.serve, (custodian, self._stopping)),
        ):
            threading.Thread(target=loop, args=args, name=name, daemon=True).start()
        custodian.start_key_pool()
        self._said(
            AlertKind.CUSTODIAN_STARTED, f"serving {self.options['bind'][0]}{_unclean(custodian)}"
        )
        return App(custodian)

    def _said(self, kind: AlertKind, summary: str) -> None:
        """The custodian's own start or stop, on its channel: a custody host stopped
        (or restarted with other settings) is the security officer's to know."""
        if self.custodian is None:
            return
        channel = self.custodian.channel
        with self.custodian.ledger.writing() as writer:
            alert = channel.record(
                writer, self.custodian._clock(), kind, summary, severity=Severity.CRITICAL
            )
        channel.publish([alert])

    def _worker_exit(self, _arbiter: Any, _worker: Any) -> None:
        self._stopping.set()
        if self.custodian is not None:
            try:
                self._said(AlertKind.CUSTODIAN_STOPPED, "stopped")
            finally:
                self.custodian.close()
