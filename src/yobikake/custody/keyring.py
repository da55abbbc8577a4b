"""The keys only custody holds: each list's RSA key pair (whose public half the
application seals to) and the custody signing key (Ed25519: ledger head, deletion
certificates).

Two keyrings hold the list keys. `LocalKeyring` (the embedded profile) keeps each private
key in a 0600 file under the custody home. `OpenBaoKeyring` (production) keeps them as
OpenBao transit keys of type rsa-3072, whose private half never leaves OpenBao; the
custodian only asks it to decrypt a wrapped batch key. OpenBao's transit engine decrypts
RSA keys with OAEP, SHA-256 for both the hash and MGF1, and no label (Go's
`rsa.DecryptOAEP(sha256.New(), ..., nil)` in OpenBao's keysutil; checked against a real
server in tests/custody/test_keyring.py), which is what `sealing.OAEP` is.

The local keyring keeps a pool of key pairs made ahead of need (`KeyPool`): making an
RSA-3072 key takes 0.05-0.5 s of CPU, which a list's import would otherwise wait for. A
pooled key is a 0600 file under `keys/pool/`, never sent anywhere; a list created takes
one (a link to its file under the list's name, then the pool's name removed) and the
custodian records the list's key in its ledger as for a key made on the spot. OpenBao
makes each list's transit key when the list is created (its keys are named by list).

Both keyrings' list keys are version 1 only: a wrapped batch key names no key version, so
a rotated transit key would stop opening what was sealed before.
"""

import base64
import hashlib
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol, TypeVar

import hvac
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from yobikake.custody.protocol import RSA_BITS
from yobikake.custody.sealing import OAEP

TRANSIT_KEY_TYPE = f"rsa-{RSA_BITS}"

T = TypeVar("T")


class CustodyFileError(Exception):
    """A custody file is missing, or open to others."""


class KeyGone(Exception):
    """The list has no key in the keyring: never created, or destroyed."""


class CannotUnwrap(Exception):
    """The wrapped batch key does not decrypt under the list's private key."""


class KeyringUnavailable(Exception):
    """The keyring cannot be reached or refuses the custodian (OpenBao down, a token
    revoked): nothing opens."""


class Keyring(Protocol):
    """Where the lists' private keys live; the custodian never sees them leave."""

    def create(self, list_id: int) -> str:
        """The list's key pair, made if there is none; its public half (PEM)."""
        ...

    def public_pem(self, list_id: int) -> str: ...

    def decrypt(self, list_id: int, wrapped: bytes) -> bytes:
        """A batch key wrapped to the list's public key (RSA-OAEP SHA-256), unwrapped."""
        ...

    def destroy(self, list_id: int) -> None:
        """Destroy the list's private key; a key already gone is no error."""
        ...

    def fingerprint(self, list_id: int) -> str: ...


@dataclass(frozen=True)
class KeyringSettings:
    """custody.json's "keyring": {"kind": "local"} or {"kind": "openbao", "addr", "mount",
    "token_file" | "role_id" + "secret_id_file", "ca_file"}."""

    kind: str
    addr: str = ""
    mount: str = "transit"
    token_file: Path | None = None
    role_id: str | None = None
    secret_id_file: Path | None = None
    ca_file: Path | None = None


def open_keyring(settings: KeyringSettings, keys_dir: Path) -> Keyring:
    if settings.kind == "openbao":
        return OpenBaoKeyring(settings)
    return LocalKeyring(keys_dir)


def fingerprint_of(public_pem: str) -> str:
    """SHA-256 of the public key's SubjectPublicKeyInfo, hex: the same for a key whichever
    keyring holds it, and what the deletion certificate names."""
    key = serialization.load_pem_public_key(public_pem.encode())
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


POOL_DIR = "pool"


def _new_private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def add_to_pool(pool: Path) -> None:
    """Make one key pair into the pool directory `pool`."""
    pool.mkdir(mode=0o700, exist_ok=True)
    write_private(pool / f"key-{os.urandom(8).hex()}.pem", _new_private_pem())


class LocalKeyring:
    """Private keys in `keys_dir/list-<id>.pem` (PKCS#8, 0600), loaded once per process;
    key pairs made ahead of need in `keys_dir/pool/` (`KeyPool` fills it)."""

    def __init__(self, keys_dir: Path) -> None:
        self._dir = Path(keys_dir)
        self._pool = self._dir / POOL_DIR
        self._loaded: dict[int, rsa.RSAPrivateKey] = {}
        self._lock = threading.Lock()

    def _path(self, list_id: int) -> Path:
        return self._dir / f"list-{int(list_id)}.pem"

    def _private(self, list_id: int) -> rsa.RSAPrivateKey:
        key = self._loaded.get(list_id)
        if key is not None:
            return key
        path = self._path(list_id)
        try:
            check_private(path)
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            raise KeyGone(f"list {list_id}") from None
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise CustodyFileError(f"{path} is not an RSA key")
        with self._lock:
            self._loaded[list_id] = loaded
        return loaded

    def create(self, list_id: int) -> str:
        path = self._path(list_id)
        if not path.exists() and not self._take_pooled(path):
            # A concurrent create keeps the first.
            write_private(path, _new_private_pem(), exclusive=True)
        return self.public_pem(list_id)

    def _pooled_files(self) -> Iterator[Path]:
        try:
            yield from self._pool.glob("key-*.pem")
        except FileNotFoundError:
            return

    def pooled(self) -> int:
        """How many key pairs the pool holds."""
        return sum(1 for _ in self._pooled_files())

    def add_to_pool(self) -> None:
        """Make one key pair into the pool (in this process)."""
        add_to_pool(self._pool)

    @property
    def pool_dir(self) -> Path:
        return self._pool

    def _take_pooled(self, path: Path) -> bool:
        """Give the list at `path` a pooled key pair; False when the pool is empty. A key
        is claimed by renaming it (one taker wins, across threads and processes), then
        linked under the list's name, which a key made meanwhile keeps."""
        for pooled in self._pooled_files():
            claimed = pooled.with_name(f".claimed-{os.getpid()}-{os.urandom(4).hex()}")
            try:
                os.rename(pooled, claimed)
            except FileNotFoundError:
                continue  # another taker's
            try:
                check_private(claimed)
                os.link(claimed, path)
            except FileExistsError:
                os.rename(claimed, pooled)  # the list has its key: this one stays pooled
                return True
            claimed.unlink()
            return True
        return False

    def public_pem(self, list_id: int) -> str:
        loaded = self._loaded.get(list_id)
        if loaded is not None:
            return _public_pem(loaded.public_key())
        # Only the public half is taken from the file here, so the private key's checks
        # (some 130 ms for RSA-3072: its primes tested) are left to the first decryption
        # (`_private`), which keeps the checked key; a new list does not wait for them.
        path = self._path(list_id)
        try:
            check_private(path)
            key = serialization.load_pem_private_key(
                path.read_bytes(), password=None, unsafe_skip_rsa_key_validation=True
            )
        except FileNotFoundError:
            raise KeyGone(f"list {list_id}") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CustodyFileError(f"{path} is not an RSA key")
        return _public_pem(key.public_key())

    def decrypt(self, list_id: int, wrapped: bytes) -> bytes:
        try:
            return self._private(list_id).decrypt(wrapped, OAEP)
        except ValueError:
            raise CannotUnwrap(f"list {list_id}") from None

    def destroy(self, list_id: int) -> None:
        with self._lock:
            self._loaded.pop(list_id, None)
        path = self._path(list_id)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        # Overwritten before unlinking, so the key is not left whole in the freed blocks
        # of a simple file system; a journaling or copy-on-write file system, an SSD's
        # remapping and backups of the custody home can still hold it
        # (docs/threat-model.md).
        with path.open("r+b") as f:
            f.write(os.urandom(size))
            f.flush()
            os.fsync(f.fileno())
        path.unlink()

    def fingerprint(self, list_id: int) -> str:
        return fingerprint_of(self.public_pem(list_id))


# Lists are made in runs (an import of an insurer's history makes one per year): the
# pool refills once none has been taken for this long, so that making keys does not
# compete with the import for the CPU — unless it runs low (`LOW_WATER` of its size).
QUIET_SECONDS = 20.0
LOW_WATER = 8


class KeyPool:
    """Keeps `size` key pairs ready in a local keyring's pool: a background thread fills
    it when the custodian starts and again once lists stop taking keys for `quiet`
    seconds (`taken`), or at once when fewer than a `LOW_WATER`th of its size are left.
    The pool is files in custody's keys directory, so a restarted custodian finds it
    full.

    The keys are made in a process of their own, on CPU time nothing else wants
    (`_idle_priority`): making an RSA key holds the interpreter's lock for its whole
    0.05-0.5 s, and in the server's process every request thread would then wait up to
    the interpreter's switch interval (5 ms) each time it took the lock back — the tail
    of every reveal (bench/vault.py)."""

    def __init__(self, keyring: LocalKeyring, size: int, quiet: float = QUIET_SECONDS) -> None:
        self.keyring = keyring
        self.size = size
        self.quiet = quiet
        self._last_taken = -math.inf
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._maker: ProcessPoolExecutor | None = None

    def start(self) -> None:
        if self._thread is None and self.size > 0:
            self._thread = threading.Thread(target=self._run, name="key-pool", daemon=True)
            self._thread.start()

    def taken(self) -> None:
        """A list took a key: make another, once lists stop being made."""
        self._last_taken = time.monotonic()
        self._wake.set()

    def ready(self) -> int:
        return self.keyring.pooled()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._maker is not None:
            self._maker.shutdown(cancel_futures=True)
            self._maker = None

    def _make_one(self) -> None:
        if self._maker is None:
            self._maker = ProcessPoolExecutor(
                max_workers=1, mp_context=get_context("spawn"), initializer=_idle_priority
            )
        self._maker.submit(add_to_pool, self.keyring.pool_dir).result()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            self._wait_for_quiet()
            while not self._stop.is_set() and self.keyring.pooled() < self.size:
                self._make_one()
            if self._stop.is_set():  # its wake may have been spent waiting for quiet
                return
            self._wake.wait()

    def _wait_for_quiet(self) -> None:
        while not self._stop.is_set() and self.keyring.pooled() * LOW_WATER >= self.size:
            quiet_for = time.monotonic() - self._last_taken
            if quiet_for >= self.quiet:
                return
            self._wake.wait(self.quiet - quiet_for)  # woken by each take, and by stop
            self._wake.clear()


def _idle_priority() -> None:
    """This process runs only when the CPU is otherwise idle (Linux SCHED_IDLE), or else
    at the lowest priority: keys are made ahead while the custodian has nothing else to
    do, and a list that finds the pool empty makes its own."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        with suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, 0, 19)


class OpenBaoKeyring:
    """Transit keys `yobikake-list-<id>` in OpenBao. The custodian logs in with its own
    token file or by AppRole (role id + secret id file); an AppRole token that expires is
    renewed by logging in again."""

    def __init__(self, settings: KeyringSettings, client: hvac.Client | None = None) -> None:
        self._settings = settings
        self._mount = settings.mount
        verify: bool | str = str(settings.ca_file) if settings.ca_file else True
        self._client = client or hvac.Client(url=settings.addr, verify=verify, timeout=10)
        self._login_lock = threading.Lock()
        self._logged_in = client is not None

    @staticmethod
    def key_name(list_id: int) -> str:
        return f"yobikake-list-{int(list_id)}"

    def _login(self) -> None:
        settings = self._settings
        if settings.token_file is not None:
            self._client.token = read_secret(settings.token_file)
        elif settings.role_id is not None and settings.secret_id_file is not None:
            self._client.auth.approle.login(
                role_id=settings.role_id, secret_id=read_secret(settings.secret_id_file)
            )
        self._logged_in = True

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One transit call, logged in (again, once, if OpenBao says the token is no
        longer good); OpenBao's answers as this module's exceptions."""
        for attempt in (1, 2):
            try:
                if not self._logged_in:
                    with self._login_lock:
                        if not self._logged_in:
                            self._login()
                return method(*args, mount_point=self._mount, **kwargs)
            except hvac.exceptions.Forbidden as exc:
                if attempt == 1:  # read the token file again, or log in again
                    self._logged_in = False
                    continue
                raise KeyringUnavailable(f"OpenBao refused the custodian: {exc}") from None
            except hvac.exceptions.InvalidPath:
                raise KeyGone(str(kwargs.get("name"))) from None
            except hvac.exceptions.InvalidRequest as exc:
                if "not found" in str(exc) or "no existing key" in str(exc):
                    raise KeyGone(str(kwargs.get("name"))) from None
                raise KeyringUnavailable(f"OpenBao: {exc}") from None
            except hvac.exceptions.InternalServerError as exc:
                if "decrypt" in str(exc):
                    raise CannotUnwrap(str(kwargs.get("name"))) from None
                raise KeyringUnavailable(f"OpenBao: {exc}") from None
            except CustodyFileError:
                raise
            except Exception as exc:  # connection refused, TLS, timeouts: fail closed
                raise KeyringUnavailable(f"OpenBao unreachable: {exc}") from None
        raise AssertionError("unreachable")

    def _read(self, list_id: int) -> dict[str, Any]:
        transit = self._client.secrets.transit
        data: dict[str, Any] = self._call(transit.read_key, name=self.key_name(list_id))["data"]
        return data

    def create(self, list_id: int) -> str:
        transit = self._client.secrets.transit
        # Creating an existing transit key answers with that key, whatever its type: a key
        # someone made beforehand under this name (exportable, say) is refused here.
        self._call(transit.create_key, name=self.key_name(list_id), key_type=TRANSIT_KEY_TYPE)
        data = self._read(list_id)
        if (
            data["type"] != TRANSIT_KEY_TYPE
            or data["exportable"]
            or data["allow_plaintext_backup"]
            or data["latest_version"] != 1
        ):
            raise KeyringUnavailable(
                f"transit key {self.key_name(list_id)} is not a version-1, non-exportable "
                f"{TRANSIT_KEY_TYPE} key: refusing to seal to it"
            )
        return str(data["keys"]["1"]["public_key"])

    def public_pem(self, list_id: int) -> str:
        return str(self._read(list_id)["keys"]["1"]["public_key"])

    def decrypt(self, list_id: int, wrapped: bytes) -> bytes:
        transit = self._client.secrets.transit
        response = self._call(
            transit.decrypt_data,
            name=self.key_name(list_id),
            ciphertext="vault:v1:" + base64.b64encode(wrapped).decode(),
        )
        return base64.b64decode(response["data"]["plaintext"])

    def destroy(self, list_id: int) -> None:
        transit = self._client.secrets.transit
        name = self.key_name(list_id)
        try:
            self._call(transit.update_key_configuration, name=name, deletion_allowed=True)
            self._call(transit.delete_key, name=name)
        except KeyGone:
            return

    def fingerprint(self, list_id: int) -> str:
        return fingerprint_of(self.public_pem(list_id))


class SigningKey:
    """The custody signing key (Ed25519, `keys/custody-signing.pem`, 0600): it signs the
    ledger's head and deletion certificates. Its public half is what insurers and the
    application pin."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def create(cls, path: Path) -> None:
        """Make the key if there is none (a key already there is kept)."""
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem, exclusive=True)

    @classmethod
    def load(cls, path: Path) -> "SigningKey":
        if not path.is_file():
            raise CustodyFileError(f"{path} is missing: run `yobikake custodian init` first")
        check_private(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise CustodyFileError(f"{path} is not an Ed25519 key")
        return cls(key)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def public_pem(self) -> str:
        return _public_pem(self._key.public_key())


def verify_signature(public_pem: str, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is the custody key's (given as its public PEM) over `message`."""
    key = serialization.load_pem_public_key(public_pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _public_pem(key: rsa.RSAPublicKey | Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def check_private(path: Path) -> None:
    """Refuse a custody file or directory that others may read or write."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CustodyFileError(
            f"{path} is open to others (mode {stat.S_IMODE(mode):o}): "
            f"chmod {'700' if path.is_dir() else '600'} it"
        )


def read_secret(path: Path) -> str:
    """A secret from its file (token, secret id, password), which must be 0600."""
    if not path.is_file():
        raise CustodyFileError(f"{path} is missing")
    check_private(path)
    return path.read_text().strip()


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> bool:
    """Write `data` to a 0600 file, whole or not at all. With `exclusive`, a file already
    there is left as it is (False): two processes creating the same key keep the first
    one's, and neither reads a half-written file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        temporary.unlink(missing_ok=True)
