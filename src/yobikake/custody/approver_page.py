"""The approvers' page: served by the custodian process itself, on a port of its own
(custody.json `approver_page`), never by the application. An approver enrols a passkey
here with the one-time link the security officer gave them (`yobikake custodian approver
add`), and confirms here what they approved in the application: the page names what is
approved, for whom, until when, and the custodian verifies the passkey itself (WebAuthn,
`fido2`'s Fido2Server). Nothing of the passkey reaches the application's database.

    GET  /enrol/<token>             the enrolment page
    POST /enrol/<token>/begin       -> registration options
    POST /enrol/<token>/complete    the authenticator's answer -> {ok, message}
    GET  /approve/<token>           the confirmation page
    POST /approve/<token>/begin     -> authentication options
    POST /approve/<token>/complete  the authenticator's answer -> {ok, message}
    GET  /page.js                   the pages' one script
"""

import html
import json
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)

from yobikake.custody.core import Custodian
from yobikake.custody.pki import ServerFiles
from yobikake.custody.protocol import CustodyRefused

StartResponse = Callable[[str, list[tuple[str, str]]], object]
# How long a begun ceremony waits for the authenticator's answer.
CEREMONY_SECONDS = 300
MAX_BODY = 64 * 1024
KIND_LABELS = {
    "role": "役割の付与",
    "export": "エクスポートの承認",
    "early_deletion": "保存期間前の消去",
    "consent": "保険者の同意",
}

SCRIPT = """
const data = document.body.dataset;
const button = document.getElementById("go");
const result = document.getElementById("result");
button?.addEventListener("click", async () => {
  button.disabled = true;
  try {
    const begun = await (await fetch(data.begin, { method: "POST" })).json();
    if (!begun.ok) { result.textContent = begun.message; return; }
    const credential = data.mode === "enrol"
      ? await navigator.credentials.create({
          publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(begun.options.publicKey) })
      : await navigator.credentials.get({
          publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(begun.options.publicKey) });
    const done = await fetch(data.complete, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(credential.toJSON()),
    });
    const answer = await done.json();
    result.textContent = answer.message;
    result.className = answer.ok ? "ok" : "refused";
  } catch (error) {
    result.textContent = "パスキーで確認できませんでした: " + error;
    result.className = "refused";
    button.disabled = false;
  }
});
"""

PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} — 呼びかけ 鍵保管サービス</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}
dt{{font-weight:bold}}.ok{{color:#064}}.refused{{color:#a00}}</style></head>
<body data-mode="{mode}" data-begin="{begin}" data-complete="{complete}">
<p>呼びかけ 鍵保管サービス（アプリケーションとは別の管理者が運用しています）</p>
<h1>{title}</h1>
{body}
<p id="result" role="status"></p>
<script src="/page.js"></script>
</body></html>
"""


def _when(iso: str) -> str:
    return iso[:16].replace("T", " ") + " UTC"


class ApproverPage:
    """The WSGI application of the approvers' page, over one custodian."""

    def __init__(self, custodian: Custodian) -> None:
        self.custodian = custodian
        self.registry = custodian.registry
        origin = custodian.config.approver_origin
        rp = PublicKeyCredentialRpEntity(
            id=urlsplit(origin).hostname or "", name="呼びかけ 鍵保管サービス"
        )
        self.fido = Fido2Server(rp, verify_origin=lambda seen: seen == origin)
        self._ceremonies: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        parts = path.strip("/").split("/")
        try:
            if method == "GET" and path == "/page.js":
                return self._send(start_response, "200 OK", SCRIPT, "text/javascript")
            if len(parts) >= 2 and parts[0] in ("enrol", "approve"):
                mode, token, step = parts[0], parts[1], "/".join(parts[2:])
                if method == "GET" and not step:
                    status, page = self._page(mode, token)
                    return self._send(start_response, status, page, "text/html; charset=utf-8")
                if method == "POST" and step in ("begin", "complete"):
                    body = self._body(environ) if step == "complete" else {}
                    answer = getattr(self, f"_{mode}_{step}")(token, body)
                    return self._send(
                        start_response, "200 OK", json.dumps(answer), "application/json"
                    )
        except (ValueError, KeyError, TypeError) as exc:
            answer = {"ok": False, "message": f"確認できませんでした（{type(exc).__name__}）"}
            return self._send(
                start_response, "400 Bad Request", json.dumps(answer), "application/json"
            )
        return self._send(
            start_response, "404 Not Found", "見つかりません", "text/plain; charset=utf-8"
        )

    @staticmethod
    def _send(start_response: StartResponse, status: str, text: str, kind: str) -> list[bytes]:
        payload = text.encode()
        start_response(
            status,
            [
                ("Content-Type", kind),
                ("Content-Length", str(len(payload))),
                (
                    "Content-Security-Policy",
                    "default-src 'none'; script-src 'self'; "
                    "connect-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                ),
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer"),
                ("Cache-Control", "no-store"),
            ],
        )
        return [payload]

    @staticmethod
    def _body(environ: dict[str, Any]) -> dict[str, Any]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY:
            raise ValueError("too large")
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        if not isinstance(body, dict):
            raise TypeError("not an object")
        return body

    # -- pages ---------------------------------------------------------------------------

    def _page(self, mode: str, token: str) -> tuple[str, str]:
        now = self.custodian._clock()
        links = {
            "mode": mode,
            "begin": f"/{mode}/{token}/begin",
            "complete": f"/{mode}/{token}/complete",
        }
        if mode == "enrol":
            approver = self.registry.approver_by_enrol_token(token, now)
            if approver is None:
                return "404 Not Found", self._render(
                    "登録できません", "<p>このリンクは使えません（期限切れか使用済み）。</p>", links
                )
            body = (
                f"<p>承認者 <strong>{html.escape(approver.name)}</strong>"
                f"（アプリケーションの利用者番号 {approver.user_id}）"
                "のパスキーを鍵保管サービスに登録します。</p>"
                '<button id="go" type="button">パスキーを登録する</button>'
            )
            return "200 OK", self._render("承認者のパスキー登録", body, links)
        approval = self.registry.approval_by_token(token)
        if approval is None:
            return "404 Not Found", self._render(
                "確認できません", "<p>この確認リンクは使えません。</p>", links
            )
        e = html.escape
        rows = [
            ("承認する内容", KIND_LABELS.get(approval.kind, approval.kind)),
            ("役割・対象", approval.role),
            # The name is the application's word; the id is what custody will open for.
            ("対象の利用者", f"{approval.holder_name}（利用者番号 {approval.holder_user_id}）"),
            ("保険者", "—" if approval.insurer_id is None else f"保険者番号 {approval.insurer_id}"),
            ("有効期限", _when(approval.until)),
            ("アプリケーションでの承認者", f"利用者番号 {approval.approved_by_user_id}"),
            ("内容", approval.summary),
        ]
        listing = (
            "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(str(v))}</dd>" for k, v in rows) + "</dl>"
        )
        if approval.state != "pending":
            by, at = e(approval.confirmed_by or ""), _when(approval.confirmed_at or "")
            done = f'<p class="ok">確認済みです（{by}、{at}）。</p>'
            return "200 OK", self._render("確認済みの承認", listing + done, links)
        body = listing + (
            "<p>内容を確かめ、あなたが承認したものであれば、鍵保管サービスに登録したパスキーで確認してください。"
            "確認されるまで、この承認では何も開かれません。</p>"
            '<button id="go" type="button">パスキーで確認する</button>'
        )
        return "200 OK", self._render("承認の確認", body, links)

    @staticmethod
    def _render(title: str, body: str, links: dict[str, str]) -> str:
        return PAGE.format(
            title=html.escape(title), body=body, **{k: html.escape(v) for k, v in links.items()}
        )

    # -- ceremonies ----------------------------------------------------------------------

    def _keep(self, key: str, state: Any) -> None:
        now = time.monotonic()
        with self._lock:
            self._ceremonies = {k: v for k, v in self._ceremonies.items() if v[0] > now}
            self._ceremonies[key] = (now + CEREMONY_SECONDS, state)

    def _take(self, key: str) -> Any:
        with self._lock:
            kept = self._ceremonies.pop(key, None)
        if kept is None or kept[0] < time.monotonic():
            raise ValueError("no ceremony begun")
        return kept[1]

    def _enrol_begin(self, token: str, _body: dict[str, Any]) -> dict[str, Any]:
        approver = self.registry.approver_by_enrol_token(token, self.custodian._clock())
        if approver is None:
            return {"ok": False, "message": "このリンクは使えません（期限切れか使用済み）。"}
        user = PublicKeyCredentialUserEntity(
            id=f"approver-{approver.id}".encode(), name=approver.name, display_name=approver.name
        )
        options, state = self.fido.register_begin(
            user,
            [
                AttestedCredentialData(a.credential)
                for a in self.registry.enrolled()
                if a.credential
            ],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        self._keep("enrol:" + token, state)
        return {"ok": True, "options": dict(options)}

    def _enrol_complete(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        state = self._take("enrol:" + token)
        approver = self.registry.approver_by_enrol_token(token, self.custodian._clock())
        if approver is None:
            return {"ok": False, "message": "このリンクは使えません（期限切れか使用済み）。"}
        data = self.fido.register_complete(state, body)
        if data.credential_data is None:
            raise ValueError("no credential")
        self.registry.enrol(approver, bytes(data.credential_data), self.custodian._clock())
        return {"ok": True, "message": f"承認者 {approver.name} のパスキーを登録しました。"}

    def _approve_begin(self, token: str, _body: dict[str, Any]) -> dict[str, Any]:
        approval = self.registry.approval_by_token(token)
        if approval is None or approval.state != "pending":
            return {"ok": False, "message": "この承認は確認待ちではありません。"}
        credentials = self._credentials()
        if not credentials:
            return {"ok": False, "message": "鍵保管サービスに登録された承認者がいません。"}
        options, state = self.fido.authenticate_begin(
            [c for c, _ in credentials], user_verification=UserVerificationRequirement.REQUIRED
        )
        self._keep("approve:" + token, state)
        return {"ok": True, "options": dict(options)}

    def _approve_complete(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        state = self._take("approve:" + token)
        approval = self.registry.approval_by_token(token)
        if approval is None:
            return {"ok": False, "message": "この確認リンクは使えません。"}
        credentials = self._credentials()
        context = {"holder_user_id": approval.holder_user_id}
        try:
            used = self.fido.authenticate_complete(state, [c for c, _ in credentials], body)
        except ValueError as exc:
            try:
                self.custodian.refuse_confirmation(
                    f"approval {approval.id}: a passkey custody does not know ({exc})", context
                )
            except CustodyRefused:
                return {
                    "ok": False,
                    "message": "このパスキーは鍵保管サービスに登録されていません。",
                }
        approver = next(a for c, a in credentials if bytes(c) == bytes(used))
        try:
            self.custodian.confirm_approval(approval, approver)
        except CustodyRefused:
            return {
                "ok": False,
                "message": "この承認は確認できません。セキュリティ責任者に通知しました。",
            }
        return {
            "ok": True,
            "message": f"確認しました（{approver.name}）。{KIND_LABELS.get(approval.kind, '')}は"
            f"{_when(approval.until)}まで有効です。",
        }

    def _credentials(self) -> list[tuple[AttestedCredentialData, Any]]:
        return [
            (AttestedCredentialData(a.credential), a)
            for a in self.registry.enrolled()
            if a.credential
        ]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(custodian: Custodian, stop: threading.Event) -> None:
    """Serve the approvers' page until `stop` (a thread of the custodian's worker)."""
    config = custodian.config
    host, _, port = config.approver_bind.rpartition(":")
    try:
        server = make_server(
            host.strip("[]"), int(port), ApproverPage(custodian), _Threading, handler_class=_Quiet
        )
    except OSError as exc:
        print(
            f"custodian: the approvers' page cannot listen on {config.approver_bind}: {exc}",
            file=sys.stderr,
            flush=True,
        )
        return
    if config.approver_tls:
        files = ServerFiles.of(config.home)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(files.cert), str(files.key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=_stop_when, args=(server, stop), daemon=True).start()
    server.serve_forever(poll_interval=0.5)
    server.server_close()


def _stop_when(server: WSGIServer, stop: threading.Event) -> None:
    stop.wait()
    server.shutdown()
