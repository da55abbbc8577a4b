"""The custody home: one directory (`var/custody/` in the embedded profile) holding the
custodian's settings (custody.json), its keys (keys/), its ledger and its alert log.

The settings live here, not in the application's settings or environment, because the
application's administrator controls those: budgets, calling hours and alert recipients
are the security officer's, on the custody host. The home is 0700 and every secret file
0600; a home or secret readable by others is refused, as ssh refuses a loose key.
"""

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from yobikake.custody import keyring
from yobikake.custody.keyring import (
    CustodyFileError,
    KeyringSettings,
    check_private,
    read_secret,
    write_private,
)

CONFIG_FILE = "custody.json"
KEYS_DIR = "keys"
LEDGER_FILE = "ledger.sqlite3"
ALERTS_LOG = "alerts.log"
SIGNING_KEY_FILE = "custody-signing.pem"

DEFAULTS: dict[str, Any] = {
    # Opens per holder per hour, by the role the application says the holder has; a role
    # not listed gets "default".
    "holder_hourly": {"operator": 60, "researcher": 120, "default": 60},
    # Opens per hour for the whole call centre: what one compromised application can take
    # before the custodian stops it.
    "centre_hourly": 1000,
    # Opens per minute for the whole centre: whoever holds the application's credentials
    # can invent holders, each with a fresh hourly budget; a burst over this is refused
    # and a critical alert.
    "centre_per_minute": 30,
    # The centre's seats: more distinct holders opening within an hour is a critical
    # alert (holders invented to spread a bulk read thin).
    "seats": 50,
    # Asia/Tokyo, Monday to Saturday, [from, until) hours, for the purposes that ring a
    # resident (call, dial).
    "calling_hours": [9, 20],
    # Refusals of one holder within an hour that make a critical alert.
    "refusal_alert_threshold": 5,
    # How long an unwrapped batch key stays in the custodian's memory.
    "key_cache_ttl_seconds": 300,
    # Key pairs the local keyring keeps made ahead of need (keyring.KeyPool), so that a
    # list's import does not wait while one is made; 0: made when a list is created.
    "key_pool": 32,
    # An export's bulk open: at most this many rows, and this many bulk opens within 24
    # hours for the whole centre.
    "bulk_max_rows": 50000,
    "bulk_per_day": 20,
    # True only for a custodian of synthetic organisations (the demo, drills, benchmarks):
    # it may open everything in bulk (purpose "synthetic"). Set when the home is made.
    "synthetic": False,
    "keyring": {"kind": "local"},
    # Reconciliation (reconcile.py): the application reports its audit events through
    # the port; an open or an event still unmatched this long after the report that
    # should have carried its partner is a critical alert, and so is no report at all
    # for `report_deadline_seconds`. `custodian serve` reconciles every
    # `reconcile_every_seconds`.
    "reconcile_grace_seconds": 120,
    "report_deadline_seconds": 600,
    "reconcile_every_seconds": 60,
    # {"host", "port", "starttls", "user", "password_file", "from", "to": [...]}; None:
    # alerts go to the ledger and alerts.log only.
    "smtp": None,
    # {"url", "secret_file"}: every alert POSTed as JSON to `url` (https://, or http://
    # to loopback), signed with the secret (HMAC-SHA256) when there is one; None: no
    # webhook.
    "webhook": None,
    # The most seconds between two heartbeats of each (watch.py): the application (its
    # web server and task worker beat every minute), and the scheduled checks — `audit
    # sweep`, reconciliation's report (`report_audit`) and `retention enforce`. One
    # missed is a critical alert; `custodian serve` looks every `heartbeat_check_seconds`.
    "heartbeats": {"application": 300, "audit_sweep": 1800, "reconcile": 600, "retention": 90000},
    "heartbeat_check_seconds": 30,
    # A session older than this since its login is not honoured (watch.py): a working
    # day, so that a session key taken from the application's database ages out.
    "session_max_hours": 12,
    # The approvers' page (approver_page.py), served by the custodian process on a port
    # of its own: where it listens, the origin approvers' browsers see (the passkeys'
    # relying party is its host name), and whether it speaks TLS with the custodian's
    # server certificate (false only on loopback: a browser treats http://localhost as
    # secure).
    "approver_page": {"bind": "127.0.0.1:8102", "origin": "https://localhost:8102", "tls": True},
    # The longest a role confirmed in custody lasts before it is approved again.
    "holder_max_days": 366,
}


class ConfigError(CustodyFileError):
    """The custody home or its settings are missing, malformed, or too open."""


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    starttls: bool
    sender: str
    to: tuple[str, ...]
    user: str | None = None
    password_file: Path | None = None

    def password(self) -> str | None:
        return read_secret(self.password_file) if self.password_file else None


@dataclass(frozen=True)
class Webhook:
    url: str
    secret_file: Path | None = None

    def secret(self) -> str | None:
        return read_secret(self.secret_file) if self.secret_file else None


@dataclass(frozen=True)
class Config:
    home: Path
    holder_hourly: dict[str, int]
    centre_hourly: int
    centre_per_minute: int
    seats: int
    calling_hours: tuple[int, int]
    refusal_alert_threshold: int
    key_cache_ttl: float
    key_pool: int
    bulk_max_rows: int
    bulk_per_day: int
    synthetic: bool
    keyring: KeyringSettings
    smtp: Smtp | None = field(default=None)
    reconcile_grace: float = 120.0
    report_deadline: float = 600.0
    reconcile_every: float = 60.0
    webhook: Webhook | None = None
    heartbeats: dict[str, int] = field(default_factory=lambda: dict(DEFAULTS["heartbeats"]))
    heartbeat_check: float = 30.0
    session_max_hours: int = 12
    approver_bind: str = "127.0.0.1:8102"
    approver_origin: str = "https://localhost:8102"
    approver_tls: bool = True
    holder_max_days: int = 366

    @property
    def keys_dir(self) -> Path:
        return self.home / KEYS_DIR

    @property
    def ledger_path(self) -> Path:
        return self.home / LEDGER_FILE

    @property
    def alerts_log(self) -> Path:
        return self.home / ALERTS_LOG

    @property
    def signing_key_path(self) -> Path:
        return self.keys_dir / SIGNING_KEY_FILE

    def holder_budget(self, role: str) -> int:
        return self.holder_hourly.get(role, self.holder_hourly["default"])

    @classmethod
    def init(
        cls, home: Path, *, synthetic: bool = False, approver_origin: str | None = None
    ) -> "Config":
        """Make the custody home (0700) with its keys directory, custody.json with the
        defaults if there is none, and the custody signing key if there is none; then
        load it. Safe to run again: nothing present is overwritten.

        `synthetic`: a home for synthetic organisations only, which may open everything
        in bulk. An existing home is not turned synthetic (it may hold real lists): that
        is refused, and left to the security officer's edit of custody.json.

        `approver_origin`: where a new home's approvers' page is reached (an
        http://localhost:PORT origin serves it without TLS on loopback, as the demo does)."""
        home = Path(home)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        home.chmod(0o700)
        keys = home / KEYS_DIR
        keys.mkdir(mode=0o700, exist_ok=True)
        keys.chmod(0o700)
        path = home / CONFIG_FILE
        if not path.exists():
            settings = {**DEFAULTS, "synthetic": synthetic}
            if approver_origin is not None:
                settings["approver_page"] = approver_page_for(approver_origin)
            write_private(path, (json.dumps(settings, indent=2) + "\n").encode(), exclusive=True)
        keyring.SigningKey.create(keys / SIGNING_KEY_FILE)
        config = cls.load(home)
        if synthetic and not config.synthetic:
            raise ConfigError(
                f"{path} is not synthetic: a home made for real data is not turned synthetic "
                'by a flag (make a new home, or set "synthetic": true there by hand)'
            )
        return config

    @classmethod
    def load(cls, home: Path) -> "Config":
        home = Path(home)
        path = home / CONFIG_FILE
        if not path.is_file():
            raise ConfigError(f"{path} is missing: run `yobikake custodian init` first")
        check_private(home)
        check_private(path)
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: not a JSON object")
        unknown = set(raw) - set(DEFAULTS)
        if unknown:
            raise ConfigError(f"{path}: unknown settings {sorted(unknown)}")
        values = {**DEFAULTS, **raw}
        try:
            return cls._parse(home, values)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: {exc!r}") from None

    @classmethod
    def _parse(cls, home: Path, values: dict[str, Any]) -> "Config":
        holder = {
            str(role): _positive(n, f"holder_hourly.{role}")
            for role, n in values["holder_hourly"].items()
        }
        if "default" not in holder:
            raise ValueError("holder_hourly needs a 'default'")
        start, end = (int(h) for h in values["calling_hours"])
        if not 0 <= start < end <= 24:
            raise ValueError("calling_hours must be [from, until) within 0..24")
        return cls(
            home=home,
            holder_hourly=holder,
            centre_hourly=_positive(values["centre_hourly"], "centre_hourly"),
            centre_per_minute=_positive(values["centre_per_minute"], "centre_per_minute"),
            seats=_positive(values["seats"], "seats"),
            calling_hours=(start, end),
            refusal_alert_threshold=_positive(
                values["refusal_alert_threshold"], "refusal_alert_threshold"
            ),
            key_cache_ttl=float(values["key_cache_ttl_seconds"]),
            key_pool=_whole(values["key_pool"], "key_pool"),
            bulk_max_rows=_positive(values["bulk_max_rows"], "bulk_max_rows"),
            bulk_per_day=_positive(values["bulk_per_day"], "bulk_per_day"),
            synthetic=_boolean(values["synthetic"], "synthetic"),
            keyring=_keyring(home, values["keyring"]),
            smtp=_smtp(home, values["smtp"]),
            reconcile_grace=_positive(values["reconcile_grace_seconds"], "reconcile_grace_seconds"),
            report_deadline=_positive(values["report_deadline_seconds"], "report_deadline_seconds"),
            reconcile_every=_positive(values["reconcile_every_seconds"], "reconcile_every_seconds"),
            webhook=_webhook(home, values["webhook"]),
            heartbeats={
                str(source): _positive(seconds, f"heartbeats.{source}")
                for source, seconds in {**DEFAULTS["heartbeats"], **values["heartbeats"]}.items()
            },
            heartbeat_check=_positive(values["heartbeat_check_seconds"], "heartbeat_check_seconds"),
            session_max_hours=_positive(values["session_max_hours"], "session_max_hours"),
            **_approver_page(values["approver_page"]),
            holder_max_days=_positive(values["holder_max_days"], "holder_max_days"),
        )


def _positive(value: Any, name: str) -> int:
    number = int(value)
    if number < 1 or number != value:
        raise ValueError(f"{name} must be a positive whole number")
    return number


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a whole number, 0 or more")
    return value


def _boolean(value: Any, name: str) -> bool:
    # Strictly true or false: "false" or 0 read as a yes or a no by accident would be
    # the wrong way round for this one.
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _path(home: Path, value: str | None) -> Path | None:
    # Relative paths are the home's, so a home can be moved whole.
    return None if value is None else home / value


def _keyring(home: Path, raw: dict[str, Any]) -> KeyringSettings:
    kind = raw.get("kind")
    if kind == "local":
        return KeyringSettings(kind="local")
    if kind != "openbao":
        raise ValueError(f"keyring.kind must be 'local' or 'openbao', not {kind!r}")
    settings = KeyringSettings(
        kind="openbao",
        addr=str(raw["addr"]),
        mount=str(raw.get("mount", "transit")),
        token_file=_path(home, raw.get("token_file")),
        role_id=raw.get("role_id"),
        secret_id_file=_path(home, raw.get("secret_id_file")),
        ca_file=_path(home, raw.get("ca_file")),
    )
    if (settings.token_file is None) == (settings.role_id is None):
        raise ValueError("keyring: give either token_file or role_id with secret_id_file")
    if settings.role_id is not None and settings.secret_id_file is None:
        raise ValueError("keyring: role_id needs secret_id_file")
    _check_tls(settings.addr)
    return settings


def _check_tls(addr: str, what: str = "keyring.addr", who: str = "OpenBao") -> None:
    """OpenBao answers a decrypt with the batch key in the clear, and an alert must not
    be read or stopped on the way: over the network that takes TLS (https://, verified
    against `ca_file` or the system's authorities). Plain http:// only to this host's
    loopback, where a development server (or a test's receiver) listens."""
    url = urlsplit(addr)
    if url.scheme == "https":
        return
    host = url.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if url.scheme != "http" or not loopback:
        raise ValueError(f"{what} {addr!r}: {who} must be reached over https://")


def approver_page_for(origin: str) -> dict[str, Any]:
    """The approvers' page's settings for an origin: on loopback at its port, TLS for
    https://."""
    url = urlsplit(origin)
    bind = f"127.0.0.1:{url.port or 443}"
    return {"bind": bind, "origin": origin.rstrip("/"), "tls": url.scheme == "https"}


def _approver_page(raw: dict[str, Any]) -> dict[str, Any]:
    """The approvers' page's settings: plain HTTP only on loopback, for a loopback origin."""
    bind, origin = str(raw["bind"]), str(raw["origin"]).rstrip("/")
    tls = _boolean(raw.get("tls", True), "approver_page.tls")
    url = urlsplit(origin)
    if url.scheme != ("https" if tls else "http") or not url.hostname:
        raise ValueError(f"approver_page.origin {origin!r} must be {'https' if tls else 'http'}://")
    host = bind.rpartition(":")[0].strip("[]")
    if not tls and (url.hostname != "localhost" or host not in ("127.0.0.1", "::1", "localhost")):
        raise ValueError("approver_page: without TLS only on loopback, for http://localhost")
    return {"approver_bind": bind, "approver_origin": origin, "approver_tls": tls}


def _smtp(home: Path, raw: dict[str, Any] | None) -> Smtp | None:
    if raw is None:
        return None
    to = raw["to"]
    return Smtp(
        host=str(raw["host"]),
        port=int(raw.get("port", 587)),
        starttls=bool(raw.get("starttls", True)),
        sender=str(raw["from"]),
        to=(to,) if isinstance(to, str) else tuple(str(a) for a in to),
        user=raw.get("user"),
        password_file=_path(home, raw.get("password_file")),
    )


def _webhook(home: Path, raw: dict[str, Any] | None) -> Webhook | None:
    if raw is None:
        return None
    url = str(raw["url"])
    _check_tls(url, "webhook.url", "the webhook")
    return Webhook(url=url, secret_file=_path(home, raw.get("secret_file")))
