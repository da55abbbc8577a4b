"""An in-memory key service for unit tests: the software service with nothing on disk."""

from yobikake.vault.adapters.software import SoftwareKeyService, StoredKey


class _MemoryKeyring:
    def load(self) -> dict[str, StoredKey]:
        return {}

    def save(self, keys: dict[str, StoredKey]) -> None:
        pass


class FakeKeyService(SoftwareKeyService):
    def __init__(self) -> None:
        super().__init__(_MemoryKeyring())
