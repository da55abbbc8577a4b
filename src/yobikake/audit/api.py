"""The audit log for insurers: the application's signed checkpoints, the heads custody
countersigned, and RFC 6962 proofs against those heads, which an insurer checks with
custody's public key alone (custody/merkle.py, docs/audit.md)."""

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.errors import HttpError

from yobikake.audit import chain
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Checkpoint, Event
from yobikake.audit.selectors import access_event
from yobikake.audit.tree import LogTree, MissingEvents
from yobikake.custody.protocol import AuditHead, CustodyUnavailable
from yobikake.vault.custodian import CustodianPort, custodian

router = Router(tags=["audit"])


class CheckpointOut(Schema):
    head_seq: int
    head_hash: str
    at: str  # exactly as signed: YYYY-MM-DDTHH:MM:SS.ffffffZ
    key_id: str
    signature: str

    @staticmethod
    def resolve_at(checkpoint: Checkpoint) -> str:
        return chain.encode_time(checkpoint.at)


class PublicKeyOut(Schema):
    key_id: str
    pem: str
    signed_message: str


@router.get(
    "/audit/checkpoints",
    response=list[CheckpointOut],
    summary="Signed checkpoints of the audit log, for insurers to fetch and pin",
)
def list_checkpoints(request: HttpRequest, after_seq: int = 0) -> list[Checkpoint]:
    return list(Checkpoint.objects.filter(head_seq__gt=after_seq).order_by("head_seq")[:1000])


@router.get(
    "/audit/public-key", response=PublicKeyOut, summary="The key checkpoints are signed with"
)
def public_key(request: HttpRequest) -> PublicKeyOut:
    keys = audit_keys()
    return PublicKeyOut(
        key_id=keys.key_id,
        pem=keys.public_key_pem(),
        signed_message=(
            "UTF-8 lines: 'yobikake-audit-checkpoint v1', head_seq, head_hash, "
            "at as YYYY-MM-DDTHH:MM:SS.ffffffZ; Ed25519 signature in hex"
        ),
    )


class HeadOut(Schema):
    size: int
    root: str  # hex
    at: str  # exactly as signed
    signature: str  # hex Ed25519, by the custody key


class InclusionOut(Schema):
    kind: str  # "inclusion"
    seq: int
    tag: str
    leaf_index: int
    leaf: str  # the event's hash, hex
    head: HeadOut
    proof: list[str]


class ConsistencyOut(Schema):
    kind: str  # "consistency"
    first: HeadOut
    second: HeadOut
    proof: list[str]


def _head_out(head: AuditHead) -> dict[str, Any]:
    return {"size": head.size, "root": head.root, "at": head.at, "signature": head.signature.hex()}


def _head(port: CustodianPort, size: int) -> AuditHead:
    """The countersigned head of `size` events (0: the latest), or 404."""
    try:
        if size <= 0:
            head = port.latest_head()
        else:
            head = next((h for h in port.audit_heads(size - 1)[:1] if h.size == size), None)
    except CustodyUnavailable:
        raise HttpError(503, "Custody cannot be reached") from None
    if head is None or head.size == 0:
        raise HttpError(404, "No head of that size was countersigned")
    return head


def _proof(make: Callable[[LogTree], list[bytes]], size: int) -> list[str]:
    """A proof from the log as the database holds it now: one that does not check is
    the insurer's evidence that the log was rewritten."""
    tree = LogTree(size)
    try:
        proof = make(tree)
    except MissingEvents:
        raise HttpError(409, "The log no longer holds every event of that head") from None
    tree.save()
    return [h.hex() for h in proof]


@router.get(
    "/audit/heads",
    response=list[HeadOut],
    summary="Heads of the audit log countersigned by custody, smallest first",
)
def list_heads(request: HttpRequest, after_size: int = 0) -> list[dict[str, Any]]:
    try:
        return [_head_out(h) for h in custodian().audit_heads(after_size)]
    except CustodyUnavailable:
        raise HttpError(503, "Custody cannot be reached") from None


@router.get(
    "/audit/proofs/inclusion",
    response=InclusionOut,
    summary="Proof that an event of one's own insurer is in a countersigned head",
)
def inclusion_proof(request: HttpRequest, seq: int, size: int = 0) -> dict[str, Any]:
    """Against the head of `size` events (default: the latest countersigned)."""
    try:
        event = access_event(request.auth, seq)  # type: ignore[arg-type]
    except Event.DoesNotExist:
        raise HttpError(404, "Not found") from None
    head = _head(custodian(), size)
    if head.size < seq:
        raise HttpError(409, f"Event {seq} is not yet in a countersigned head")
    proof = _proof(lambda tree: tree.inclusion(seq - 1, head.size), head.size)
    return {
        "kind": "inclusion",
        "seq": seq,
        "tag": event.tag,
        "leaf_index": seq - 1,
        "leaf": event.hash,
        "head": _head_out(head),
        "proof": proof,
    }


@router.get(
    "/audit/proofs/consistency",
    response=ConsistencyOut,
    summary="Proof that a countersigned head extends an earlier one",
)
def consistency_proof(request: HttpRequest, first: int, second: int = 0) -> dict[str, Any]:
    """Between the heads of `first` and `second` events (default: the latest)."""
    port = custodian()
    old, new = _head(port, first), _head(port, second)
    if old.size > new.size:
        raise HttpError(400, "The first head must not be larger than the second")
    proof = _proof(lambda tree: tree.consistency(old.size, new.size), new.size)
    return {
        "kind": "consistency",
        "first": _head_out(old),
        "second": _head_out(new),
        "proof": proof,
    }
