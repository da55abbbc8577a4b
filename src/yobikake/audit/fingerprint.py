"""What a process starts with that sets a control: the security-relevant settings, all
listed here, what Python itself is told to load (its PYTHON* environment, its path, a
sitecustomize, .pth files), and a digest of the installed package.

Each start records them in the log (audit/startup.py), so a budget raised in the
environment or a file edited on the host is on the record at the next start, with the
old and new values. Values go into the log as they are when they are short codes or
numbers; secrets, addresses and anything longer go in as a keyed digest (under the audit
MAC key, so a database reader cannot test guesses against it), which says "changed"
without saying what to.
"""

import contextlib
import hashlib
import hmac
import os
import site
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

import yobikake
from yobikake.audit.services import DETAIL_TEXT, Detail

CODE_ROOT = Path(yobikake.__file__).resolve().parent


@dataclass(frozen=True)
class Control:
    key: str  # its name in the log and in alerts
    read: Callable[[], object]
    secret: bool = False


def _setting(name: str, part: str | int | None = None) -> Callable[[], object]:
    def read() -> object:
        value = getattr(settings, name, None)
        return value[part] if part is not None and value is not None else value  # type: ignore[index]

    return read


def _python_environment() -> object:
    # PYTHONPATH, PYTHONSTARTUP, PYTHONPYCACHEPREFIX, PYTHONINSPECT…: each changes what runs.
    return sorted((name, value) for name, value in os.environ.items() if name.startswith("PYTHON"))


def _python_path() -> object:
    """sys.path without what the launcher puts there for itself (the script's directory,
    "" for `-c`, the working directory for `-m` or a server's chdir), which differs
    from the web server to a command and is not a change."""
    launcher = {""}
    with contextlib.suppress(OSError):  # a working directory since removed
        launcher.add(os.getcwd())
    if sys.argv and os.path.isfile(sys.argv[0]):
        launcher.add(os.path.dirname(os.path.abspath(sys.argv[0])))
    return [entry for entry in sys.path if entry not in launcher]


def _file_digest(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return f"{path}:{hashlib.sha256(Path(path).read_bytes()).hexdigest()}"
    except OSError:
        return f"{path}:unreadable"


def _customize(name: str) -> Callable[[], object]:
    # Imported by `site` before anything else, from anywhere on the path.
    def read() -> object:
        module = sys.modules.get(name)
        return _file_digest(getattr(module, "__file__", None)) if module is not None else None

    return read


def _pth_files() -> object:
    # Every line of a .pth file that starts with "import" runs at each interpreter start.
    directories = [*site.getsitepackages(), site.getusersitepackages()]
    return sorted(
        _file_digest(str(path))
        for directory in directories
        for path in Path(directory).glob("*.pth")
    )


def _lockout_minutes() -> object:
    cooloff = getattr(settings, "AXES_COOLOFF_TIME", None)
    return int(cooloff.total_seconds() // 60) if cooloff is not None else None


CONTROLS = (
    # What the reveal gate, the inquiry desk and the grants allow.
    Control("reveal_budget_operator", _setting("YOBIKAKE_REVEAL_BUDGETS", "operator")),
    Control("reveal_budget_researcher", _setting("YOBIKAKE_REVEAL_BUDGETS", "researcher")),
    Control("reveal_budget_default", _setting("YOBIKAKE_REVEAL_BUDGETS", "default")),
    Control("inquiry_budget", _setting("YOBIKAKE_INQUIRY_BUDGET")),
    Control("grant_minutes", _setting("YOBIKAKE_GRANT_MINUTES")),
    Control("approval_hours", _setting("YOBIKAKE_APPROVAL_HOURS")),
    # The smallest control group a campaign starts with unless its insurer approves.
    Control("control_group_min_percent", _setting("YOBIKAKE_CONTROL_GROUP_MIN_PERCENT")),
    Control("calling_hours_start", _setting("YOBIKAKE_CALLING_HOURS", 0)),
    Control("calling_hours_end", _setting("YOBIKAKE_CALLING_HOURS", 1)),
    Control("canaries_per_list", _setting("YOBIKAKE_CANARIES_PER_LIST")),
    Control("canary_phones", _setting("YOBIKAKE_CANARY_PHONES")),
    Control("export_watermark_rows", _setting("YOBIKAKE_EXPORT_WATERMARK_ROWS")),
    # Who hears about misuse.
    Control("alert_denials", _setting("YOBIKAKE_ALERT_DENIALS")),
    Control("alert_denials_minutes", _setting("YOBIKAKE_ALERT_DENIALS_MINUTES")),
    Control("alert_emails", _setting("YOBIKAKE_ALERT_EMAILS")),
    Control("alert_webhook_url", _setting("YOBIKAKE_ALERT_WEBHOOK_URL"), secret=True),
    Control("mailers", _setting("MAILERS"), secret=True),
    # The keys and the log's own evidence.
    Control("key_service", _setting("YOBIKAKE_KEY_SERVICE")),
    Control("openbao_addr", _setting("OPENBAO_ADDR")),
    Control("openbao_transit_mount", _setting("OPENBAO_TRANSIT_MOUNT")),
    Control("openbao_token", _setting("OPENBAO_TOKEN"), secret=True),
    Control("keys_dir", _setting("YOBIKAKE_KEYS_DIR")),
    Control("master_key_file", _setting("YOBIKAKE_MASTER_KEY_FILE")),
    Control("data_key_ttl_seconds", _setting("YOBIKAKE_DATA_KEY_TTL_SECONDS")),
    Control("audit_checkpoint_every", _setting("YOBIKAKE_AUDIT_CHECKPOINT_EVERY")),
    Control("audit_checkpoint_minutes", _setting("YOBIKAKE_AUDIT_CHECKPOINT_MINUTES")),
    # Logging in and staying logged in.
    Control("login_failure_limit", _setting("AXES_FAILURE_LIMIT")),
    Control("lockout_minutes", _lockout_minutes),
    Control("session_idle_seconds", _setting("SESSION_COOKIE_AGE")),
    Control("api_token_max_days", _setting("YOBIKAKE_API_TOKEN_MAX_DAYS")),
    Control("session_cookie_secure", _setting("SESSION_COOKIE_SECURE")),
    Control("csrf_cookie_secure", _setting("CSRF_COOKIE_SECURE")),
    Control("ssl_redirect", _setting("SECURE_SSL_REDIRECT")),
    Control("hsts_seconds", _setting("SECURE_HSTS_SECONDS")),
    Control("proxy_ssl_header", _setting("SECURE_PROXY_SSL_HEADER")),
    Control("allowed_hosts", _setting("ALLOWED_HOSTS")),
    Control("debug", _setting("DEBUG")),
    Control("password_hashers", _setting("PASSWORD_HASHERS")),
    Control("password_validators", _setting("AUTH_PASSWORD_VALIDATORS")),
    Control("authentication_backends", _setting("AUTHENTICATION_BACKENDS")),
    Control("middleware", _setting("MIDDLEWARE")),
    Control("secret_key", _setting("SECRET_KEY"), secret=True),
    # Settings from another module than Yobikake's own are outside the code digest.
    Control("settings_module", _setting("SETTINGS_MODULE")),
    # What Python loads besides the package.
    Control("python_env", _python_environment),
    Control("sys_path", _python_path),
    Control("sitecustomize", _customize("sitecustomize")),
    Control("usercustomize", _customize("usercustomize")),
    Control("pth_files", _pth_files),
)


def _digest(key: bytes, name: str, value: object) -> str:
    message = f"yobikake-setting\x00{name}\x00{value!r}".encode()
    return "hmac:" + hmac.digest(key, message, "sha256").hex()[:16]


def _recorded(control: Control, key: bytes) -> Detail:
    """A control's value as the log takes it."""
    value = control.read()
    if value is None or value == "":
        return None  # unset says nothing about a secret
    if not control.secret:
        if isinstance(value, bool | int):
            return value
        if isinstance(value, Path):
            value = f"path:{value}"
        if isinstance(value, str) and DETAIL_TEXT.match(value):
            return value
    return _digest(key, control.key, value)


def _code_files(root: Path) -> Iterator[tuple[str, Path]]:
    # Every file: code, templates, static files, data tables, translations. Compiled
    # files are checked against their sources instead (bytecode.py), and a home kept
    # inside the package (a command run from there) is data, not code.
    home = str(Path(settings.YOBIKAKE_HOME).resolve())
    for directory, subdirectories, files in os.walk(root):
        if directory == home or directory.startswith(home + os.sep):
            subdirectories.clear()
            continue
        subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
        relative = Path(directory).relative_to(root).as_posix()
        for name in files:
            yield (name if relative == "." else f"{relative}/{name}"), Path(directory, name)


def code_digest(root: Path = CODE_ROOT) -> str:
    """SHA-256 over every file of the package but its __pycache__ (names and contents).
    About 330 files and 2.4 MB: some 10 ms."""
    digest = hashlib.sha256()
    for name, path in sorted(_code_files(root)):
        content = path.read_bytes()
        digest.update(f"{name}\x00{len(content)}\x00".encode())
        digest.update(content)
    return "sha256:" + digest.hexdigest()[:32]


def fingerprint(key: bytes) -> dict[str, Detail]:
    """Every control's recorded value, and the code digest (`code`)."""
    return {c.key: _recorded(c, key) for c in CONTROLS} | {"code": code_digest()}
