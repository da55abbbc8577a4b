from cryptography.hazmat.primitives.serialization import load_pem_public_key

from tests.audit.helpers import fill_log
from yobikake.audit import chain
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Checkpoint
from yobikake.audit.verify import verify_log


def test_the_audit_log_runs_on_openbao_keys(on_openbao, settings, db):
    settings.YOBIKAKE_AUDIT_CHECKPOINT_EVERY = 3
    fill_log(6)
    assert audit_keys().key_id == "openbao:yobikake-audit-checkpoints"
    assert verify_log().intact
    # The signing key is OpenBao's: its public half verifies the checkpoints.
    transit = on_openbao.client().secrets.transit
    assert transit.read_key(name="yobikake-audit-checkpoints")["data"]["type"] == "ed25519"
    public = load_pem_public_key(audit_keys().public_key_pem().encode())
    for checkpoint in Checkpoint.objects.all():
        message = chain.checkpoint_message(checkpoint.head_seq, checkpoint.head_hash, checkpoint.at)
        public.verify(bytes.fromhex(checkpoint.signature), message)
    # On disk there is only the wrapped MAC key, never the key itself.
    files = {p.name: p.read_bytes() for p in (settings.YOBIKAKE_KEYS_DIR).iterdir()}
    assert list(files) == ["audit-mac.wrapped"]
    assert audit_keys().mac_key() not in files["audit-mac.wrapped"]
    assert files["audit-mac.wrapped"].startswith(b"vault:v1:")
