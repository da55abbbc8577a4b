"""A model field for sealed values: it stores and returns ciphertext bytes, and has no
way to decrypt. Reading a model instance never yields plaintext; the reveal gate
(`vault.reveal`) is the only road there."""

from typing import Any

from django.db import models


class SealedField(models.BinaryField):
    description = "A value sealed by the vault (AES-256-GCM ciphertext)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("null", True)  # a value the list did not give
        kwargs["editable"] = False
        super().__init__(*args, **kwargs)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> bytes | None:
        # PostgreSQL hands back a memoryview; bytes everywhere keeps callers simple.
        return None if value is None else bytes(value)
