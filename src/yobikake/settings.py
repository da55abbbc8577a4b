"""Yobikake settings, read from the environment.

The embedded profile (no environment at all) keeps everything under YOBIKAKE_HOME
(default ./var): the SQLite database, the secret key and, later, the keyring. The
production profile sets DATABASE_URL (PostgreSQL) and the key-service address.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

PACKAGE_DIR = Path(__file__).resolve().parent


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envsecret(name: str) -> str | None:
    """NAME itself, or the contents of the file NAME_FILE points at (fails loudly)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return os.environ.get(name) or None


def _home() -> Path:
    home = Path(os.environ.get("YOBIKAKE_HOME") or "var").resolve()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return home


def _generated_secret(path: Path) -> str:
    """A secret kept in a 0600 file, created on first run and never committed."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


YOBIKAKE_HOME = _home()

SECRET_KEY = envsecret("YOBIKAKE_SECRET_KEY") or _generated_secret(YOBIKAKE_HOME / "secret_key")
DEBUG = envbool("YOBIKAKE_DEBUG", False)
ALLOWED_HOSTS = os.environ.get("YOBIKAKE_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_htmx",
    "axes",
    "ninja",
    "yobikake.tenancy",
    "yobikake.accounts",
    "yobikake.audit",
    "yobikake.intake",
    "yobikake.calling",
    "yobikake.vault",
    "yobikake.incidents",
    "yobikake.exports",
    "yobikake.reports",
    "yobikake.synth",
    # After intake, whose `db_worker` (the same worker, clearing up after a killed one
    # first) takes the place of this app's own.
    "django_tasks_db",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "yobikake.accounts.middleware.SlidingSessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "yobikake.audit.context.AuditContextMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "yobikake.accounts.middleware.RequireVerifiedLoginMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "yobikake.accounts.middleware.SessionBoundToLoginMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Axes must come last: it turns a lockout raised anywhere above into its response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "yobikake.urls"
WSGI_APPLICATION = "yobikake.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "yobikake.accounts.context_processors.navigation",
            ],
        },
    },
]

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("YOBIKAKE_SQLITE_PATH") or YOBIKAKE_HOME / "yobikake.sqlite3",
            "OPTIONS": {
                # WAL lets readers run beside the one writer; IMMEDIATE takes the write
                # lock at BEGIN so two writers queue instead of failing mid-transaction.
                # A 64 MB page cache: a list import writes each person's blind indexes into
                # indexes of random 16-byte values, which SQLite's default 2 MB thrashes.
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                    "PRAGMA cache_size=-65536;"
                ),
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # Tests use a file too, not shared-cache memory, whose table locks ignore
            # the busy timeout: concurrency tests must see what production sees.
            "TEST": {"NAME": YOBIKAKE_HOME / "test.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "yobikake.accounts.backends.ExpiringAccountBackend",
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"

# Throttling: failed passwords and failed TOTP codes both count against the account.
AXES_FAILURE_LIMIT = envint("YOBIKAKE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envint("YOBIKAKE_LOCKOUT_MINUTES", 30))
AXES_LOCKOUT_PARAMETERS = ["username"]
# Locking by account is the point; adding the address would let one person's typos
# lock out a whole call centre behind one NAT address.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False

# Idle timeout: the session lives N minutes past the last request.
SESSION_COOKIE_AGE = envint("YOBIKAKE_IDLE_TIMEOUT_MINUTES", 30) * 60
# The idle timeout slides with use; the session is rewritten at most once a minute
# (accounts.middleware.SlidingSessionMiddleware), not on every request.
SESSION_SAVE_EVERY_REQUEST = False
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SECURE_COOKIES = envbool("YOBIKAKE_SECURE_COOKIES", True)
SESSION_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Strict"
SESSION_COOKIE_NAME = "yobikake_session"
CSRF_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Strict"
SECURE_SSL_REDIRECT = envbool("YOBIKAKE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = envint("YOBIKAKE_HSTS_SECONDS", 0)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if envbool("YOBIKAKE_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Strict CSP: no inline script or style, nothing from another origin.
SECURE_CSP = {
    "default-src": [CSP.NONE],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}

LANGUAGE_CODE = "ja"
LANGUAGES = [("ja", "日本語"), ("en", "English")]
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "Asia/Tokyo"
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
STATIC_ROOT = YOBIKAKE_HOME / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# The embedded profile serves static files straight from the package, no collectstatic.
WHITENOISE_USE_FINDERS = True

# Keys the database must never hold (audit MAC and checkpoint signing key, for now).
YOBIKAKE_KEYS_DIR = Path(os.environ.get("YOBIKAKE_KEYS_DIR") or YOBIKAKE_HOME / "keys")
# The key service: "local" (a keyring file in YOBIKAKE_KEYS_DIR, sealed by a master key)
# or "openbao" (OpenBao transit, run by the security officer's side).
YOBIKAKE_KEY_SERVICE = os.environ.get("YOBIKAKE_KEY_SERVICE", "local")
YOBIKAKE_MASTER_KEY_FILE = os.environ.get("YOBIKAKE_MASTER_KEY_FILE", "")
OPENBAO_ADDR = os.environ.get("OPENBAO_ADDR", "http://127.0.0.1:8200")
OPENBAO_TOKEN = envsecret("OPENBAO_TOKEN")
OPENBAO_TRANSIT_MOUNT = os.environ.get("OPENBAO_TRANSIT_MOUNT", "transit")
# The custodian (custody domain, `yobikake custodian serve`): where it listens, and the
# directory its `init` wrote the application's client certificate into (ca.pem,
# client.pem, client-key.pem). Nothing under it opens a stored field.
YOBIKAKE_CUSTODIAN_URL = os.environ.get("YOBIKAKE_CUSTODIAN_URL", "https://127.0.0.1:8101")
YOBIKAKE_CUSTODIAN_CLIENT_DIR = Path(
    os.environ.get("YOBIKAKE_CUSTODIAN_CLIENT_DIR") or YOBIKAKE_HOME / "custodian"
)
# Unwrapped data keys stay in process memory this many seconds, then the key service is
# asked again (so a stopped key service stops reveals within this time).
YOBIKAKE_DATA_KEY_TTL_SECONDS = envint("YOBIKAKE_DATA_KEY_TTL_SECONDS", 300)
# Background work (list imports): Django's tasks framework with its database backend;
# `yobikake db_worker` runs them (`make demo` starts one beside the server).
TASKS = {
    "default": {
        "BACKEND": os.environ.get("YOBIKAKE_TASKS_BACKEND", "django_tasks_db.DatabaseBackend")
    }
}
# Progress of running imports, shared between the worker and the web processes.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": YOBIKAKE_HOME / "cache",
    }
}
# Largest list file accepted by the upload and the API (megabytes). Uploads are sealed as
# they arrive (never written in plaintext) and cut off at this size.
YOBIKAKE_UPLOAD_MAX_MB = envint("YOBIKAKE_UPLOAD_MAX_MB", 50)
FILE_UPLOAD_HANDLERS = ["yobikake.intake.uploads.SealingUploadHandler"]
# Worker processes that seal and index a list's rows while the importer reads and checks
# the next ones (intake/sealing.py); 0 seals in the importing process itself.
YOBIKAKE_IMPORT_WORKERS = envint("YOBIKAKE_IMPORT_WORKERS", 1 if (os.cpu_count() or 1) > 1 else 0)

# How long a reveal grant lasts unless its issuer says otherwise (a call, a research task).
YOBIKAKE_GRANT_MINUTES = envint("YOBIKAKE_GRANT_MINUTES", 30)
# How long an export request waits for its second person, and an approval for its download.
YOBIKAKE_APPROVAL_HOURS = envint("YOBIKAKE_APPROVAL_HOURS", 24)
# Synthetic rows mixed into each results export when it is produced: its own watermark,
# which leak scoping finds in a leaked copy to name the export it came from.
YOBIKAKE_EXPORT_WATERMARK_ROWS = envint("YOBIKAKE_EXPORT_WATERMARK_ROWS", 3)

# Audit log: sign a checkpoint every N events or T minutes, whichever comes first; and
# have custody countersign the log's head every N events (audit/witness.py).
YOBIKAKE_AUDIT_CHECKPOINT_EVERY = envint("YOBIKAKE_AUDIT_CHECKPOINT_EVERY", 1000)
YOBIKAKE_AUDIT_CHECKPOINT_MINUTES = envint("YOBIKAKE_AUDIT_CHECKPOINT_MINUTES", 60)

# Alert rules.
YOBIKAKE_ALERT_DENIALS = envint("YOBIKAKE_ALERT_DENIALS", 5)
YOBIKAKE_ALERT_DENIALS_MINUTES = envint("YOBIKAKE_ALERT_DENIALS_MINUTES", 10)
YOBIKAKE_REVEAL_BUDGETS = {
    "operator": envint("YOBIKAKE_REVEAL_BUDGET_OPERATOR", 60),
    "researcher": envint("YOBIKAKE_REVEAL_BUDGET_RESEARCHER", 120),
    "default": envint("YOBIKAKE_REVEAL_BUDGET_DEFAULT", 60),
}
# Lookups one inquiry desk user may make in an hour (the next is refused and alerted).
YOBIKAKE_INQUIRY_BUDGET = envint("YOBIKAKE_INQUIRY_BUDGET", 30)
_hours = os.environ.get("YOBIKAKE_CALLING_HOURS", "9-20").split("-")
YOBIKAKE_CALLING_HOURS = (int(_hours[0]), int(_hours[1]))  # Asia/Tokyo, Monday–Saturday
# The smallest control group (percent of a campaign's people, never called) a campaign may
# start with unless its insurer approves a smaller one: below it, the effect of calling
# cannot be measured.
YOBIKAKE_CONTROL_GROUP_MIN_PERCENT = envint("YOBIKAKE_CONTROL_GROUP_MIN_PERCENT", 5)
YOBIKAKE_ALERT_EMAILS = os.environ.get("YOBIKAKE_ALERT_EMAILS", "").split(",")
YOBIKAKE_ALERT_WEBHOOK_URL = os.environ.get("YOBIKAKE_ALERT_WEBHOOK_URL", "")
# Mail goes to the console unless an SMTP server is named.
if os.environ.get("YOBIKAKE_SMTP_HOST"):
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": os.environ["YOBIKAKE_SMTP_HOST"],
                "port": envint("YOBIKAKE_SMTP_PORT", 25),
            },
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
DEFAULT_FROM_EMAIL = os.environ.get("YOBIKAKE_EMAIL_FROM", "yobikake@localhost")

# API tokens: the longest life a personal token may be given.
YOBIKAKE_API_TOKEN_MAX_DAYS = envint("YOBIKAKE_API_TOKEN_MAX_DAYS", 90)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("YOBIKAKE_LOG_LEVEL", "WARNING")},
}

# Canary residents planted in every list at import (incidents/canaries.py), and the phone
# numbers they are given: numbers the federation holds and watches, so a call to one is
# noticed, under the area codes (and mobile prefixes) of its insurers' lists — a canary
# takes one under its template's. Comma-separated. Empty (the default, for demos and
# synthetic lists): generated numbers in an exchange starting with 0, which ring no one
# and which no one watches.
YOBIKAKE_CANARIES_PER_LIST = envint("YOBIKAKE_CANARIES_PER_LIST", 3)
YOBIKAKE_CANARY_PHONES = [
    p.strip() for p in os.environ.get("YOBIKAKE_CANARY_PHONES", "").split(",") if p.strip()
]
