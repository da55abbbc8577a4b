import os
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests import custody_registry
from tests.pii import LOADED_PEOPLE
from yobikake.accounts import authz
from yobikake.accounts.models import Organization, RoleAssignment, User
from yobikake.accounts.permissions import OrganizationKind, Role
from yobikake.jp.insurer_numbers import with_check_digit
from yobikake.tenancy.models import Contract, Insurer

PASSWORD = "correct horse battery staple"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With CI=true a skipped test is a failed test: CI must run everything."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true: {report.longrepr}"


@pytest.fixture(autouse=True)
def _audit_guards(request):
    """The append-only triggers are on for every test. Transactional tests end with a
    flush of every table, which the triggers would refuse, so they come off just
    before it (this fixture is torn down before the database fixture flushes)."""
    if "db" not in request.fixturenames and not request.node.get_closest_marker("django_db"):
        yield
        return
    from django.db import connection

    from yobikake.audit import guards

    marker = request.node.get_closest_marker("django_db")
    transactional = "live_server" in request.fixturenames or (
        marker is not None and marker.kwargs.get("transaction")
    )
    request.getfixturevalue("transactional_db" if transactional else "db")
    _reference_data()
    guards.install(connection)
    yield
    _assert_no_personal_data_in_events()
    LOADED_PEOPLE.clear()
    if transactional:
        guards.remove(connection)


def _reference_data():
    """What migrations put in (the call outcomes), put back where an earlier
    transactional test's flush took it out."""
    from yobikake.calling import dispositions
    from yobikake.calling.models import Disposition

    if not Disposition.objects.exists():
        dispositions.seed(Disposition)


def _assert_no_personal_data_in_events():
    from tests.pii import SYNTHETIC_PERSONAL_DATA, loaded_values
    from yobikake.audit.models import Event

    values = [*SYNTHETIC_PERSONAL_DATA, *loaded_values()]
    # Every field but the time (which a tamper test may have made unreadable).
    fields = [f.name for f in Event._meta.concrete_fields if f.name != "at"]
    for row in Event.objects.values_list(*fields).iterator():
        text = " ".join(str(v) for v in row)
        leaked = [value for value in values if value in text]
        assert not leaked, f"event {row[0]} holds personal data: {leaked}"


@pytest.fixture(scope="session")
def openbao():
    """A real OpenBao dev server on a free loopback port, for the whole session."""
    from yobikake.vault import devserver

    try:
        devserver.bao_binary()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    server = devserver.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _tasks_run_at_once(settings):
    # Background tasks run inside the request that enqueues them; the real-browser test
    # of the upload runs a real worker instead.
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


# Keys made once per test session and handed out again: an RSA-3072 key pair costs a
# fraction of a second, and every list a test loads gets one. Values stay bound to their
# list by their associated data, so two lists sharing a key pair still do not open each
# other's values.
_KEY_POOL: list[object] = []
_POOL_SIZE = 12
_generate_rsa_key = __import__(
    "cryptography.hazmat.primitives.asymmetric.rsa", fromlist=["rsa"]
).generate_private_key


def _pooled_rsa_key(*args, **kwargs):
    if len(_KEY_POOL) < _POOL_SIZE:
        _KEY_POOL.append(_generate_rsa_key(*args, **kwargs))
        return _KEY_POOL[-1]
    _KEY_POOL.append(_KEY_POOL.pop(0))
    return _KEY_POOL[-1]


# What the tests' custodian allows: any hour (tests run whenever they are run) and
# budgets no test of the application reaches. tests/custody tests the custodian's own
# rules on homes of their own.
TEST_CUSTODY = {
    "calling_hours": [0, 24],
    "holder_hourly": {"default": 100_000},
    "centre_hourly": 1_000_000,
    "centre_per_minute": 1_000_000,
    "seats": 100_000,
    "bulk_per_day": 100_000,
    "bulk_max_rows": 10_000_000,
}


@pytest.fixture(autouse=True)
def custody(request, tmp_path_factory, monkeypatch):
    """A custodian of the test's own (a real `custody.core.Custodian`, in this process:
    `vault.custodian.InProcess`), on a synthetic home, reached through the port as the
    application reaches the real one. Tests that start processes of their own use
    tests/custody/server_fixture.py."""
    import json

    from yobikake.custody import keyring
    from yobikake.custody.config import CONFIG_FILE, Config
    from yobikake.vault import custodian as port
    from yobikake.vault.devserver import free_port

    # A port of the test's own: a `demo` the test runs starts its custodian there, and
    # two test runs on one machine do not meet.
    url = f"https://127.0.0.1:{free_port()}"
    custody_registry.CONFIRMED.clear()
    custody_registry.CUSTODIANS.clear()
    monkeypatch.setenv("YOBIKAKE_CUSTODIAN_URL", url)
    request.getfixturevalue("settings").YOBIKAKE_CUSTODIAN_URL = url
    if "custody" in request.path.parts:  # the custodian's own tests make their own
        yield None
        return
    # Beside the test's tmp_path, not in it: tests scan and count what they write there.
    home = tmp_path_factory.mktemp("custody") / "home"
    Config.init(home, synthetic=True)
    path = home / CONFIG_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **TEST_CUSTODY}))
    monkeypatch.setattr(keyring.rsa, "generate_private_key", _pooled_rsa_key)
    fake = port.InProcess(home)
    monkeypatch.setattr(port, "_build", lambda *args: fake)
    custody_registry.adopt(fake.custodian)
    yield fake
    fake.close()


@pytest.fixture
def custody_process(tmp_path, monkeypatch):
    """A real custodian process (`yobikake custodian serve`, mutual TLS), for tests whose
    `yobikake` subprocesses seal or open: this process and its children reach the same
    one (the environment names it), instead of the in-process `custody`."""
    import json

    from tests.custody import server_fixture
    from yobikake.custody.config import CONFIG_FILE
    from yobikake.custody.core import Custodian
    from yobikake.vault import custodian as port

    root = tmp_path / "custody-process"
    home, client_dir = server_fixture.init(root)
    config = home / CONFIG_FILE
    settings = {**json.loads(config.read_text()), **TEST_CUSTODY, "synthetic": True}
    config.write_text(json.dumps(settings))
    server = server_fixture.start(root)
    # The roles confirmed so far, and those confirmed later, in the process's registry
    # too (through its ledger, as `yobikake custodian holder confirm` does).
    registrar = Custodian(home)
    custody_registry.adopt(registrar)
    monkeypatch.setenv("YOBIKAKE_CUSTODIAN_URL", server.url)
    monkeypatch.setenv("YOBIKAKE_CUSTODIAN_CLIENT_DIR", str(client_dir))
    client = server.client()
    monkeypatch.setattr(port, "_build", lambda *args: client)
    yield server
    client.close()
    registrar.close()
    server.stop()


@pytest.fixture(autouse=True)
def _no_canaries(settings):
    # Most tests count and pair the rows they load; the canary tests (tests/incidents)
    # plant them, and so does everything outside the tests.
    from yobikake.incidents import canaries

    settings.YOBIKAKE_CANARIES_PER_LIST = 0
    canaries.forget()


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Argon2 is the configured hasher (tests/test_settings.py checks it); tests hash with
    # MD5 only to stay fast.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    """Two insurers, A and B, and one user per role. Charlie-style: staff_b must never
    see anything of insurer A."""

    insurer_a: Insurer
    insurer_b: Insurer
    federation: Organization
    call_centre: Organization
    maintenance: Organization
    fed_admin: User
    security: User
    sysadmin: User
    staff_a: User
    staff_b: User
    supervisor: User
    operator: User
    researcher: User
    desk: User

    def users(self) -> dict[Role, User]:
        return {
            Role.FEDERATION_ADMIN: self.fed_admin,
            Role.SECURITY_OFFICER: self.security,
            Role.SYSADMIN: self.sysadmin,
            Role.INSURER_STAFF: self.staff_a,
            Role.SUPERVISOR: self.supervisor,
            Role.OPERATOR: self.operator,
            Role.RESEARCHER: self.researcher,
            Role.INQUIRY_DESK: self.desk,
        }


def make_user(username: str, org: Organization, role: Role | None, **extra) -> User:
    """A user with an active role, written directly: tests of the grant rules themselves
    go through the services."""
    if org.is_contractor:
        extra.setdefault("expires_at", timezone.now() + timedelta(days=90))
    user = User(username=username, organization=org, **extra)
    user.set_password(PASSWORD)
    user.save()
    authz.seal_user(user)
    if role is not None:
        authz.seal(
            RoleAssignment.objects.create(user=user, role=role, status=RoleAssignment.Status.ACTIVE)
        )
        custody_registry.confirm_in_custody(user, role)
    return user


def make_request(user: User, role: Role, requested_by: User) -> RoleAssignment:
    """A pending role request as `request_role` would leave it (sealed)."""
    assignment = RoleAssignment.objects.create(
        user=user, role=role, status=RoleAssignment.Status.PENDING, requested_by=requested_by
    )
    authz.seal(assignment)
    return assignment


def make_insurer(number_body: str, name: str) -> Insurer:
    insurer = Insurer.objects.create(
        number=with_check_digit(number_body), name=name, kind=Insurer.Kind.MUNICIPALITY
    )
    Organization.objects.create(name=name, kind=OrganizationKind.INSURER, insurer=insurer)
    return insurer


@pytest.fixture
def world(db) -> World:
    insurer_a = make_insurer("21901", "テスト市A")
    insurer_b = make_insurer("21902", "テスト町B")
    for insurer, year in ((insurer_a, 2021), (insurer_a, 2022), (insurer_b, 2022)):
        Contract.objects.create(
            insurer=insurer,
            fiscal_year=year,
            calling_starts=timezone.datetime(year, 9, 1).date(),
            calling_ends=timezone.datetime(year, 12, 20).date(),
            retention_until=timezone.datetime(year + 2, 3, 31).date(),
        )
    federation = Organization.objects.create(name="連合会", kind=OrganizationKind.FEDERATION)
    call_centre = Organization.objects.create(name="CC", kind=OrganizationKind.CALL_CENTRE)
    maintenance = Organization.objects.create(name="保守", kind=OrganizationKind.MAINTENANCE)
    return World(
        insurer_a=insurer_a,
        insurer_b=insurer_b,
        federation=federation,
        call_centre=call_centre,
        maintenance=maintenance,
        fed_admin=make_user("fed-admin", federation, Role.FEDERATION_ADMIN),
        security=make_user("security", federation, Role.SECURITY_OFFICER),
        sysadmin=make_user("sysadmin", maintenance, Role.SYSADMIN),
        staff_a=make_user("staff-a", insurer_a.organization, Role.INSURER_STAFF),
        staff_b=make_user("staff-b", insurer_b.organization, Role.INSURER_STAFF),
        supervisor=make_user("supervisor", call_centre, Role.SUPERVISOR),
        operator=make_user("operator", call_centre, Role.OPERATOR),
        researcher=make_user("researcher", call_centre, Role.RESEARCHER),
        desk=make_user("desk", federation, Role.INQUIRY_DESK),
    )


def totp_device(user: User) -> TOTPDevice:
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="test", confirmed=True)


def current_code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():06d}"


def verified_client(user: User) -> Client:
    """A client logged in as `user` with the TOTP step passed, its login recorded as
    the login view records it (accounts/sessions.py)."""
    from yobikake.accounts import sessions

    client = Client()
    client.force_login(user, backend="yobikake.accounts.backends.ExpiringAccountBackend")
    session = client.session
    device = totp_device(user)
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    sessions.record_login(session=session, user=user, details={"device_id": device.pk})
    session.save()
    return client


@pytest.fixture
def as_user():
    return verified_client


def comparable(response) -> str:
    """A page with its per-response values (CSP nonce, masked CSRF token, its own path)
    blanked, so two responses can be compared for "tells nothing more"."""
    html = response.text.replace(response.wsgi_request.path, "PATH")
    html = re.sub(r'nonce="[^"]*"', 'nonce=""', html)
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', 'name="csrfmiddlewaretoken"', html)


def load_people(world: World, count: int = 12, seed: int = 1, fiscal_year: int = 2022):
    """A synthetic list of insurer A, loaded through the service; (list, people)."""
    from yobikake.intake.services import load_target_list
    from yobikake.synth.people import synthetic_people

    people = synthetic_people(count, seed=seed, fiscal_year=fiscal_year)
    LOADED_PEOPLE.extend(people)
    target_list = load_target_list(
        actor=world.staff_a, insurer=world.insurer_a, fiscal_year=fiscal_year, people=people
    )
    return target_list, people


@pytest.fixture
def on_openbao(settings, openbao, tmp_path):
    """The production-like profile: keys in a real OpenBao (the session's dev server)."""
    settings.YOBIKAKE_KEY_SERVICE = "openbao"
    settings.OPENBAO_ADDR = openbao.addr
    settings.OPENBAO_TOKEN = openbao.token
    settings.YOBIKAKE_KEYS_DIR = tmp_path / "keys"  # only wrapped MAC keys land here
    return openbao


@pytest.fixture
def local_keys(settings, tmp_path):
    """A local keyring of this test's own, in `tmp_path / "keys"`. Ask for it (like
    `on_openbao`) before `world`: the world's MACs are made with its keys."""
    settings.YOBIKAKE_KEYS_DIR = tmp_path / "keys"
    return settings.YOBIKAKE_KEYS_DIR


@pytest.fixture(params=["local", "openbao"])
def key_profile(request):
    """Each test that takes this runs once on the local keyring and once on OpenBao."""
    request.getfixturevalue("on_openbao" if request.param == "openbao" else "local_keys")
    return request.param
