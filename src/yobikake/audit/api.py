from django.http import HttpRequest
from ninja import Router, Schema

from yobikake.audit import chain
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Checkpoint

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
