"""Deletion certificates (データ消去証明書): issued as a list is shredded, and checked.

A certificate is signed by the key service's audit checkpoint key (audit/keys.py), the
key whose public half insurers already hold to check published checkpoints. What it
signs is `message(certificate)`: every value the page shows. Its claims are checked
against the audit log itself (`verify`): the LIST_SHRED event it names is in the chain
with the hash it states, a signed checkpoint covers that event, and the chain from the
event to the head is intact."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.utils import timezone

from yobikake.audit import chain
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Event
from yobikake.audit.services import append_event, sign_checkpoint_now
from yobikake.audit.tags import AuditTag
from yobikake.audit.verify import verify_log
from yobikake.exports.models import Approval, DeletionCertificate
from yobikake.intake.models import Target, TargetList
from yobikake.vault.services import list_key_name

FORMAT = "yobikake-deletion-certificate v1"
BUNDLE_FORMAT = "yobikake-deletion-certificate-bundle v1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _when(at: datetime) -> str:
    return chain.encode_time(at.astimezone(UTC))


def message(c: DeletionCertificate) -> bytes:
    """The bytes the certificate's signature covers: one value a line."""
    lines = [
        FORMAT,
        str(c.pk),
        c.insurer_number,
        str(c.fiscal_year),
        str(c.list_id),
        c.source_sha256,
        str(c.row_count),
        c.key_name,
        str(c.key_version),
        c.reason,
        str(c.approval_id or ""),
        _when(c.shredded_at),
        str(c.event_seq),
        c.event_hash,
        str(c.checkpoint_seq),
        c.checkpoint_hash,
        _when(c.checkpoint_at),
        c.checkpoint_signature,
        _when(c.issued_at),
        c.key_id,
    ]
    return "\n".join(lines).encode()


def issue_certificate(
    *, target_list: TargetList, approval: Approval | None = None
) -> DeletionCertificate:
    """The certificate for `target_list`, just shredded (inside the shredding's
    transaction): a checkpoint is signed over the head, which is the LIST_SHRED event or
    follows it, so the certificate can name one. That event holds the custodian's own
    certificate (the key's fingerprint, when it was destroyed, the custody key's
    signature), so this one covers it. A list's key pair has one version, never rotated."""
    event = Event.objects.filter(tag=AuditTag.LIST_SHRED, list_id=target_list.pk).latest("seq")
    checkpoint = sign_checkpoint_now()
    assert checkpoint is not None and checkpoint.head_seq >= event.seq  # noqa: S101
    keys = audit_keys()
    certificate = DeletionCertificate.objects.create(
        insurer_id=target_list.insurer_id,
        insurer_number=target_list.insurer.number,
        fiscal_year=target_list.fiscal_year,
        list_id=target_list.pk,
        source_sha256=target_list.source_sha256,
        row_count=target_list.row_count,
        key_name=list_key_name(target_list.pk),
        key_version=1,
        reason="early" if approval else "retention",
        approval=approval,
        shredded_at=target_list.shredded_at,
        event_seq=event.seq,
        event_hash=event.hash,
        checkpoint_seq=checkpoint.head_seq,
        checkpoint_hash=checkpoint.head_hash,
        checkpoint_at=checkpoint.at,
        checkpoint_signature=checkpoint.signature,
        issued_at=timezone.now(),
        key_id=keys.key_id,
    )
    certificate.signature = keys.sign(message(certificate)).hex()
    certificate.save(update_fields=["signature"])
    append_event(
        tag=AuditTag.CERTIFICATE_ISSUE,
        actor=None,
        insurer_id=target_list.insurer_id,
        list_id=target_list.pk,
        details={"certificate_id": certificate.pk, "event_seq": event.seq},
    )
    return certificate


def _signed(keys: Any, message: bytes, signature_hex: str) -> bool:
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    return bool(keys.signature_valid(message, signature))


def verify(certificate: DeletionCertificate) -> list[str]:
    """What is wrong with the certificate, checked against the audit log and the key
    service; an empty list when it holds."""
    keys = audit_keys()
    problems = []
    if not _signed(keys, message(certificate), certificate.signature):
        problems.append("the certificate's signature does not match its content")
    event = Event.objects.filter(seq=certificate.event_seq).first()
    if event is None:
        return [*problems, f"audit event {certificate.event_seq} is missing"]
    if (event.tag, event.list_id, event.insurer_id) != (
        AuditTag.LIST_SHRED,
        certificate.list_id,
        certificate.insurer_id,
    ):
        problems.append(f"audit event {event.seq} is not the shredding of this list")
    if event.hash != certificate.event_hash:
        problems.append(f"audit event {event.seq} has another hash than the certificate")
    checkpoint = chain.checkpoint_message(
        certificate.checkpoint_seq, certificate.checkpoint_hash, certificate.checkpoint_at
    )
    if not _signed(keys, checkpoint, certificate.checkpoint_signature):
        problems.append("the checkpoint's signature is not the key service's")
    if certificate.checkpoint_seq < certificate.event_seq:
        problems.append("the checkpoint does not cover the shredding event")
    head = Event.objects.filter(seq=certificate.checkpoint_seq).values_list("hash", flat=True)
    if head.first() != certificate.checkpoint_hash:
        problems.append(f"audit event {certificate.checkpoint_seq} differs from the checkpoint")
    report = verify_log(certificate.event_seq)
    problems.extend(f"audit log: {problem}" for problem in report.problems)
    if Target.objects.filter(target_list_id=certificate.list_id).exists():
        problems.append("rows of the list are still stored")
    state = TargetList.objects.filter(pk=certificate.list_id).values_list("state", flat=True)
    if state.first() != TargetList.State.SHREDDED:
        problems.append("the list is not marked shredded")
    return problems


def verification_bundle(certificate: DeletionCertificate) -> dict[str, Any]:
    """What an insurer needs to check the certificate with no access to our systems:
    the signed bytes and signature, the public key, every event from the shredding to
    the checkpoint's head as the chain hashes them (events hold ids and codes only), and
    the checkpoint with its signature. docs/operations.md has the checker."""
    events = Event.objects.filter(
        seq__gte=certificate.event_seq, seq__lte=certificate.checkpoint_seq
    ).order_by("seq")
    return {
        "format": BUNDLE_FORMAT,
        "certificate": {
            "id": certificate.pk,
            "message": message(certificate).decode(),
            "signature": certificate.signature,
            "key_id": certificate.key_id,
        },
        "public_key_pem": audit_keys().public_key_pem(),
        "events": [
            {
                "seq": event.seq,
                "tag": event.tag,
                "canonical": chain.canonical(event.chained_values(), checked=False).decode(),
                "hash": event.hash,
            }
            for event in events
        ],
        "checkpoint": {
            "head_seq": certificate.checkpoint_seq,
            "head_hash": certificate.checkpoint_hash,
            "at": _when(certificate.checkpoint_at),
            "message": chain.checkpoint_message(
                certificate.checkpoint_seq, certificate.checkpoint_hash, certificate.checkpoint_at
            ).decode(),
            "signature": certificate.checkpoint_signature,
        },
    }


class PdfUnavailable(Exception):
    """No browser to print with on this server."""


def _print_pdf(html: str) -> bytes:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            # Everything is inline: refuse any request the page might still try.
            page.route("**/*", lambda route: route.abort())
            page.set_content(html, wait_until="load")
            return page.pdf(format="A4", print_background=True)
        finally:
            browser.close()


def render_pdf(html: str) -> bytes:
    """`html` (self-contained) printed to A4 PDF by headless Chromium, or
    `PdfUnavailable`."""
    if not Path(CHROMIUM).exists():
        raise PdfUnavailable(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import Error as PlaywrightError

    # Playwright's sync API refuses a thread with a running event loop (ASGI, or a test
    # already driving a browser): print from a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            return pool.submit(_print_pdf, html).result()
        except PlaywrightError as exc:
            raise PdfUnavailable(str(exc)) from exc
