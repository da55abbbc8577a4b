"""The application domain's own keys: AES-256 keys (an insurer's blind-index key, an
upload's sealing key) kept only wrapped by the key service, and a cache of unwrapped
ones. Nothing here opens a stored field: list data is sealed to keys held in custody
(custody/sealing.py, vault/batches.py)."""

import threading
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from yobikake.vault.ports import KeyService, Wrapped


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


class DataKeyCache:
    """Unwrapped data keys, in this process's memory only, each for `ttl` seconds.
    Unwrapping asks the key service, which fails closed when it is down."""

    def __init__(
        self, keys: KeyService, ttl: float = 300, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keys = keys
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[str, str, bytes], tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, wrapped: Wrapped, *, aad: bytes) -> bytes:
        slot = (wrapped.key_name, wrapped.token, aad)
        now = self._clock()
        with self._lock:
            hit = self._cache.get(slot)
            if hit is not None and hit[0] > now:
                return hit[1]
        key = self._keys.unwrap([wrapped], aad=aad)[0]
        with self._lock:
            self._cache[slot] = (now + self._ttl, key)
        return key

    def forget(self, key_name: str | None = None) -> None:
        """Drop cached keys (all, or those wrapped by one key: after shredding it)."""
        with self._lock:
            for slot in [s for s in self._cache if key_name in (None, s[0])]:
                del self._cache[slot]
