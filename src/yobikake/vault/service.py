"""The configured key service: the local keyring (embedded default) or OpenBao."""

from functools import cache
from pathlib import Path

import hvac
from django.conf import settings

from yobikake.vault.adapters.local import LocalKeyService
from yobikake.vault.adapters.openbao import OpenBaoKeyService
from yobikake.vault.ports import KeyService


@cache
def _build(kind: str, keys_dir: str, master: str, addr: str, token: str, mount: str) -> KeyService:
    if kind == "openbao":
        return OpenBaoKeyService(hvac.Client(url=addr, token=token, timeout=10), mount=mount)
    if kind == "local":
        return LocalKeyService(Path(keys_dir), Path(master) if master else None)
    raise ValueError(f"YOBIKAKE_KEY_SERVICE must be local or openbao, not {kind!r}")


def key_service() -> KeyService:
    return _build(
        settings.YOBIKAKE_KEY_SERVICE,
        str(settings.YOBIKAKE_KEYS_DIR),
        str(settings.YOBIKAKE_MASTER_KEY_FILE or ""),
        settings.OPENBAO_ADDR,
        settings.OPENBAO_TOKEN or "",
        settings.OPENBAO_TRANSIT_MOUNT,
    )
