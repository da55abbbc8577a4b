"""An in-memory key service for unit tests: the software service with nothing on disk."""

from yobikake.vault.adapters.software import Change, SoftwareKeyService, StoredKey


class _MemoryKeyring:
    def __init__(self) -> None:
        self._keys: dict[str, StoredKey] = {}

    def load(self) -> dict[str, StoredKey]:
        return self._keys

    def changed(self) -> bool:
        return False

    def update(self, change: Change) -> dict[str, StoredKey]:
        change(self._keys)
        return self._keys


class FakeKeyService(SoftwareKeyService):
    def __init__(self) -> None:
        super().__init__(_MemoryKeyring())
