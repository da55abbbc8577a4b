"""The real key service: OpenBao's transit engine, reached with hvac. Plaintext data keys
go in and out; the wrapping and signing keys never leave OpenBao."""

import base64
from collections.abc import Callable, Sequence
from typing import Any

import hvac
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from yobikake.vault.ports import KeyKind, KeyNotFound, KeyServiceError, Wrapped

# OpenBao 2.x refuses larger batches as "high complexity" (1,000 was refused, 200 works).
BATCH = 200
MOUNT = "transit"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class OpenBaoKeyService:
    def __init__(self, client: hvac.Client, mount: str = MOUNT) -> None:
        self._client = client
        self._transit = client.secrets.transit
        self._mount = mount

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, mount_point=self._mount, **kwargs)
        except hvac.exceptions.InvalidPath as exc:
            raise KeyNotFound(str(exc)) from exc
        except hvac.exceptions.InvalidRequest as exc:
            if "not found" in str(exc).lower() or "no existing key" in str(exc).lower():
                raise KeyNotFound(str(exc)) from exc
            raise KeyServiceError(str(exc)) from exc
        except (hvac.exceptions.VaultError, OSError, ConnectionError) as exc:
            raise KeyServiceError(f"OpenBao: {exc}") from exc
        except Exception as exc:  # requests' connection errors and the like: fail closed
            raise KeyServiceError(f"OpenBao unreachable: {exc}") from exc

    def create_key(self, name: str, kind: KeyKind, *, destroyable: bool = False) -> None:
        self._call(self._transit.create_key, name=name, key_type=kind.value)
        if destroyable:
            self._call(self._transit.update_key_configuration, name=name, deletion_allowed=True)

    def _batches(self, items: Sequence[Any]) -> list[Sequence[Any]]:
        return [items[i : i + BATCH] for i in range(0, len(items), BATCH)]

    def _results(self, response: Any) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = response["data"]["batch_results"]
        for result in results:
            if result.get("error"):
                error = result["error"]
                if "not found" in error.lower():
                    raise KeyNotFound(error)
                raise KeyServiceError(error)
        return results

    def wrap(self, name: str, plaintexts: Sequence[bytes], *, aad: bytes = b"") -> list[Wrapped]:
        wrapped = []
        for batch in self._batches(plaintexts):
            response = self._call(
                self._transit.encrypt_data,
                name=name,
                batch_input=[{"plaintext": _b64(p), "associated_data": _b64(aad)} for p in batch],
            )
            wrapped += [Wrapped(name, r["ciphertext"]) for r in self._results(response)]
        return wrapped

    def _by_key(self, wrapped: Sequence[Wrapped]) -> str:
        names = {w.key_name for w in wrapped}
        if len(names) != 1:
            raise KeyServiceError("unwrap one key's data keys at a time")
        return names.pop()

    def unwrap(self, wrapped: Sequence[Wrapped], *, aad: bytes = b"") -> list[bytes]:
        if not wrapped:
            return []
        name = self._by_key(wrapped)
        plaintexts = []
        for batch in self._batches(wrapped):
            response = self._call(
                self._transit.decrypt_data,
                name=name,
                batch_input=[{"ciphertext": w.token, "associated_data": _b64(aad)} for w in batch],
            )
            plaintexts += [base64.b64decode(r["plaintext"]) for r in self._results(response)]
        return plaintexts

    def rewrap(self, wrapped: Sequence[Wrapped], *, aad: bytes = b"") -> list[Wrapped]:
        if not wrapped:
            return []
        name = self._by_key(wrapped)
        if aad:
            # Transit's rewrap does not take associated data (it fails to authenticate
            # such ciphertexts), so these go out and back in: the application may hold
            # these data keys anyway.
            return self.wrap(name, self.unwrap(wrapped, aad=aad), aad=aad)
        result = []
        for batch in self._batches(wrapped):
            response = self._call(
                self._transit.rewrap_data,
                name=name,
                ciphertext=None,
                batch_input=[{"ciphertext": w.token, "associated_data": _b64(aad)} for w in batch],
            )
            result += [Wrapped(name, r["ciphertext"]) for r in self._results(response)]
        return result

    def rotate(self, name: str) -> int:
        self._call(self._transit.rotate_key, name=name)
        return int(self._call(self._transit.read_key, name=name)["data"]["latest_version"])

    def destroy(self, name: str) -> None:
        key = self._call(self._transit.read_key, name=name)["data"]
        if not key.get("deletion_allowed"):
            raise KeyServiceError(f"{name} was not created destroyable")
        self._call(self._transit.delete_key, name=name)

    def sign(self, name: str, message: bytes) -> bytes:
        response = self._call(self._transit.sign_data, name=name, hash_input=_b64(message))
        signature: str = response["data"]["signature"]
        return base64.b64decode(signature.split(":", 2)[2])

    def public_key_pem(self, name: str) -> str:
        data = self._call(self._transit.read_key, name=name)["data"]
        latest = str(data["latest_version"])
        raw = base64.b64decode(data["keys"][latest]["public_key"])
        return (
            Ed25519PublicKey.from_public_bytes(raw)
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
