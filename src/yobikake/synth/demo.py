"""The demo installation: the seed's insurers and contracts, one organisation of each
kind, one user per role, and the seed's lists at a small scale, created through the same
services real users go through. Running it again changes nothing."""

import tempfile
from dataclasses import dataclass
from datetime import date, time, timedelta
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from yobikake.accounts import services as accounts
from yobikake.accounts.models import Organization, RoleAssignment, User
from yobikake.accounts.permissions import OrganizationKind, Role, sees_personal_data
from yobikake.accounts.selectors import active_roles
from yobikake.calling import services as calling
from yobikake.calling.models import Campaign
from yobikake.calling.simulate import simulate_day
from yobikake.exports import services as exports
from yobikake.exports.selectors import current_key
from yobikake.intake.models import TargetList
from yobikake.intake.services import load_target_list
from yobikake.synth.gifu import seed_insurers
from yobikake.synth.people import synthetic_people
from yobikake.synth.results import plant_checkup_results
from yobikake.tenancy import services as tenancy
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Contract, Insurer

DEMO_PASSWORD = "yobikake-demo-2026"  # noqa: S105 - the documented demo login
FEDERATION = "岐阜県国民健康保険団体連合会（デモ）"
CALL_CENTRE = "デモ・コールセンター株式会社"
MAINTENANCE = "デモ・システム保守株式会社"
CONTRACTOR_ACCOUNT_DAYS = 180


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    organization: str  # an organisation name, or an insurer's name


DEMO_USERS = (
    DemoUser("fed-admin", Role.FEDERATION_ADMIN, FEDERATION),
    DemoUser("security", Role.SECURITY_OFFICER, FEDERATION),
    DemoUser("desk", Role.INQUIRY_DESK, FEDERATION),
    DemoUser("sysadmin", Role.SYSADMIN, MAINTENANCE),
    DemoUser("staff-gifu", Role.INSURER_STAFF, "岐阜市"),
    DemoUser("staff-ogaki", Role.INSURER_STAFF, "大垣市"),
    DemoUser("supervisor", Role.SUPERVISOR, CALL_CENTRE),
    DemoUser("operator", Role.OPERATOR, CALL_CENTRE),
    DemoUser("researcher", Role.RESEARCHER, CALL_CENTRE),
    # Operators whose calls `load_demo_campaign` simulates (labelled so on every page).
    DemoUser("sim-operator-1", Role.OPERATOR, CALL_CENTRE),
    DemoUser("sim-operator-2", Role.OPERATOR, CALL_CENTRE),
)
_FIRST = ("fed-admin", "security", "sysadmin")


def _organization(name: str, kind: OrganizationKind) -> Organization:
    org, _ = Organization.objects.get_or_create(name=name, defaults={"kind": kind, "is_demo": True})
    return org


def _contractor_expiry(org: Organization) -> "timezone.datetime | None":
    return timezone.now() + timedelta(days=CONTRACTOR_ACCOUNT_DAYS) if org.is_contractor else None


def _organizations() -> dict[str, Organization]:
    orgs = {
        FEDERATION: _organization(FEDERATION, OrganizationKind.FEDERATION),
        CALL_CENTRE: _organization(CALL_CENTRE, OrganizationKind.CALL_CENTRE),
        MAINTENANCE: _organization(MAINTENANCE, OrganizationKind.MAINTENANCE),
    }
    return orgs


def _first_accounts(orgs: dict[str, Organization]) -> None:
    if User.objects.filter(username__in=_FIRST).exists():
        return
    accounts.bootstrap_installation(
        accounts=[
            accounts.FirstAccount(
                username=u.username,
                organization=orgs[u.organization],
                password=DEMO_PASSWORD,
                role=u.role,
                expires_at=_contractor_expiry(orgs[u.organization]),
            )
            for u in DEMO_USERS
            if u.username in _FIRST
        ]
    )


# The one demo list whose retention deadline has passed (the usual one: two years after
# its fiscal year); `load_demo_retention` shreds it and issues its deletion certificate.
DEMO_EXPIRED_LIST = ("岐阜市", 2019)


def _demo_retention_until(insurer_name: str, year: int) -> date:
    if (insurer_name, year) == DEMO_EXPIRED_LIST:
        return date(year + 2, 3, 31)
    # The seed's years are long past, and a demo whose lists were all shredded would show
    # little: every other demo list is kept for years to come.
    return date(timezone.localdate().year + 5, 3, 31)


def _insurers_and_contracts(fed_admin: User) -> None:
    for seed in seed_insurers():
        insurer = Insurer.objects.filter(number=seed.synthetic_number).first()
        if insurer is None:
            insurer = tenancy.register_insurer(
                actor=fed_admin,
                number=seed.synthetic_number,
                name=seed.name,
                kind=Insurer.Kind.NHI_ASSOCIATION
                if seed.is_nhi_association
                else Insurer.Kind.MUNICIPALITY,
            )
            Organization.objects.filter(insurer=insurer).update(is_demo=True)
        for year in seed.fiscal_years:
            if not Contract.objects.filter(insurer=insurer, fiscal_year=year).exists():
                tenancy.create_contract(
                    actor=fed_admin,
                    insurer=insurer,
                    fiscal_year=year,
                    calling_starts=date(year, 9, 1),
                    calling_ends=date(year, 12, 20),
                    retention_until=_demo_retention_until(seed.name, year),
                )


def _other_users(orgs: dict[str, Organization], sysadmin: User, fed_admin: User) -> None:
    for demo in DEMO_USERS:
        if demo.username in _FIRST:
            continue
        org = orgs.get(demo.organization) or Organization.objects.get(
            insurer__name=demo.organization
        )
        user = User.objects.filter(username=demo.username).first() or accounts.create_user(
            actor=sysadmin,
            username=demo.username,
            organization=org,
            password=DEMO_PASSWORD,
            expires_at=_contractor_expiry(org),
        )
        held = RoleAssignment.objects.filter(
            user=user, role=demo.role, status__in=["pending", "active"]
        ).first()
        held = held or accounts.request_role(actor=sysadmin, user=user, role=demo.role)
        if held.status == RoleAssignment.Status.PENDING:
            accounts.approve_role(actor=fed_admin, assignment=held)
            # The approval hands out a fresh password; the demo keeps its shared one.
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])


def demo_holders() -> list[str]:
    """The demo accounts' roles that see personal data, as `yobikake custodian holder
    confirm` takes them (USER_ID:ROLE, with :INSURER_ID for an insurer's staff): what the
    demo's security officer confirms in custody."""
    users = User.objects.select_related("organization").filter(
        username__in=[demo.username for demo in DEMO_USERS]
    )
    return [
        f"{user.pk}:{role}" + (f":{insurer}" if (insurer := user.organization.insurer_id) else "")
        for user in users
        for role in sorted(filter(sees_personal_data, active_roles(user)))
    ]


DEMO_LIST_SCALE = 0.01  # 4,832 rows over the seed's 106 insurer × fiscal-year lists
DEMO_LIST_SEED = 2026


def load_demo_lists() -> int:
    """The seed's lists at a small scale (`synth lists`), imported the way a federation
    operator would import them from the command line: every person sealed, with blind
    indexes. Once only. Returns the rows accepted."""
    from yobikake.intake import services
    from yobikake.intake.models import ListImport
    from yobikake.synth.lists import write_lists

    if ListImport.objects.exists() or TargetList.objects.exists():
        return 0
    accepted = 0
    with tempfile.TemporaryDirectory() as directory:
        for entry in write_lists(Path(directory), scale=DEMO_LIST_SCALE, seed=DEMO_LIST_SEED):
            path = Path(directory) / entry.file
            list_import = services.start_import(
                actor=None,
                insurer=Insurer.objects.get(number=entry.insurer_number),
                fiscal_year=entry.fiscal_year,
                file_name=entry.file,
                file_sha256=services.file_sha256(path),
                policy=ListImport.Policy.EXCLUDE,
            )
            accepted += services.run_import(list_import, path).rows_accepted
    return accepted


def _totp_devices() -> None:
    for user in User.objects.filter(username__in=[u.username for u in DEMO_USERS]):
        if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            TOTPDevice.objects.create(user=user, name="demo", confirmed=True)


# The demo insurer's age public key. Its private key was not kept: a demo export can be
# approved and downloaded but opened by no one (register a key of your own to open one).
DEMO_AGE_KEYS = {"staff-gifu": "age124rqucwkh0yv5nzkylkh3759udcypuc5m3da4pa3vzddvhuk6scsvtu0wr"}


def _insurer_keys() -> None:
    for username, public_key in DEMO_AGE_KEYS.items():
        staff = User.objects.get(username=username)
        if current_key(staff.organization.insurer_id) is None:
            exports.register_insurer_key(actor=staff, public_key=public_key)


class NotADemoInstallation(Exception):
    pass


@transaction.atomic
def load_demo() -> None:
    """Refused on an installation holding any real (non-demo) organisation: the demo
    approves roles in the name of its own `fed-admin` and sets known passwords."""
    if Organization.objects.filter(is_demo=False).exists():
        raise NotADemoInstallation
    orgs = _organizations()
    _first_accounts(orgs)
    fed_admin = User.objects.get(username="fed-admin")
    sysadmin = User.objects.get(username="sysadmin")
    _insurers_and_contracts(fed_admin)
    _other_users(orgs, sysadmin, fed_admin)
    _totp_devices()
    _insurer_keys()


def current_totp(username: str) -> str:
    """The current code of a demo user's authenticator; refused for any other user."""
    device = TOTPDevice.objects.filter(
        user__username=username, user__organization__is_demo=True, confirmed=True
    ).first()
    if device is None:
        raise LookupError(username)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


DEMO_CAMPAIGN_INSURER = "大垣市"  # the running campaign the demo operator works
DEMO_FINISHED_INSURER = "岐阜市"  # the finished one: results, effect, an export asked for
SIMULATED_CALLS = 40
FINISHED_CALLS = 1000  # more than a pass over its queue takes: the queue runs dry first
DEMO_SCRIPT = (
    "{氏名}様でいらっしゃいますか。{保険者}の特定健診のご案内でお電話しました、"
    "{担当者}と申します。今年度の特定健診はもうお受けになりましたか。"
)


DEMO_THIS_YEAR_ROWS = 200  # each demo campaign's list, of the current fiscal year


def contract_this_year(insurer: Insurer) -> FiscalYear:
    """The current fiscal year, with a contract for it that lets the insurer's residents
    be called any day of the year at any hour, so that the demo (and the benchmark) can be
    tried whenever it is run: a campaign lies within its contract (calling/terms.py), and
    the seed's years are long past. Made once."""
    year = FiscalYear.of(timezone.localdate())
    if not Contract.objects.filter(insurer=insurer, fiscal_year=year.year).exists():
        tenancy.create_contract(
            actor=User.objects.get(username="fed-admin"),
            insurer=insurer,
            fiscal_year=year.year,
            calling_starts=year.starts,
            calling_ends=year.ends,
            retention_until=date(year.year + 3, 3, 31),
            calling_from=time(0, 0),
            calling_until=time(23, 59),
        )
    return year


def _this_years_list(insurer_name: str) -> TargetList:
    """The insurer's list of the current fiscal year (synthetic, sent by its demo staff),
    under `contract_this_year`. Made once."""
    insurer = Insurer.objects.get(name=insurer_name)
    year = contract_this_year(insurer)
    found = TargetList.objects.filter(
        insurer=insurer, fiscal_year=year.year, state=TargetList.State.ACTIVE
    ).first()
    if found is not None:
        return found
    staff = next(
        u.username
        for u in DEMO_USERS
        if u.role == Role.INSURER_STAFF and u.organization == insurer_name
    )
    people = synthetic_people(
        DEMO_THIS_YEAR_ROWS,
        seed=DEMO_LIST_SEED + insurer.pk,
        fiscal_year=year.year,
        city=f"岐阜県{insurer_name}",
    )
    sender = User.objects.get(username=staff)
    return load_target_list(actor=sender, insurer=insurer, fiscal_year=year.year, people=people)


def _within(year: FiscalYear, starts: date, ends: date) -> dict[str, date]:
    return {"starts": max(starts, year.starts), "ends": min(ends, year.ends)}


def _demo_campaign(
    target_list: TargetList,
    label: str,
    operators: list[str],
    holdout_seed: int | None = None,
    **settings: object,
) -> Campaign:
    """A campaign over one demo list, its window all day (so that the demo can be
    tried whenever it is run; holidays and Sundays still close it, as they would any
    campaign), created, staffed and started by the demo supervisor."""
    supervisor = User.objects.get(username="supervisor")
    insurer = target_list.insurer
    campaign = calling.create_campaign(
        actor=supervisor,
        insurer=insurer,
        fiscal_year=target_list.fiscal_year,
        lists=[target_list],
        name=f"{insurer.name} {target_list.fiscal_year}年度 受診勧奨（デモ：{label}）",
        window_start=time(0, 0),
        window_end=time.max,
        saturdays=True,
        script=DEMO_SCRIPT,
        **settings,
    )
    staff = list(User.objects.filter(username__in=operators))
    calling.assign_operators(actor=supervisor, campaign=campaign, operators=staff)
    return calling.start_campaign(actor=supervisor, campaign=campaign, seed=holdout_seed)


def _simulated(campaign: Campaign, calls: int) -> str:
    """Up to `calls` simulated calls on `campaign` by the two simulated operators; what
    happened, said."""
    operators = list(campaign.operators.filter(username__startswith="sim-"))
    outcomes = simulate_day(operators, calls, seed=DEMO_LIST_SEED)
    made = sum(n for code, n in outcomes.items() if not code.startswith("nothing"))
    dry = [code for code in outcomes if code.startswith("nothing")]
    return f"SIMULATED calls: {made}" + (f" ({dry[0]})" if dry else "")


def load_demo_finished_campaign() -> str:
    """A finished campaign over 岐阜市's list of this fiscal year: started with a 30%
    control group (a size that lets the effect page show more than suppressed cells at
    the demo's scale), called through by the simulated operators until nobody more could
    be called that day, and closed. Its checkup results and export come next
    (`load_demo_results`, `load_demo_export`). Once only; says what it did."""
    latest = _this_years_list(DEMO_FINISHED_INSURER)
    if Campaign.objects.filter(lists=latest).exists():
        return ""
    today = timezone.localdate()
    campaign = _demo_campaign(
        latest,
        "終了済み",
        ["sim-operator-1", "sim-operator-2"],
        holdout_seed=DEMO_LIST_SEED,  # the same control group on every demo
        holdout_share=Decimal("0.30"),
        **_within(FiscalYear(latest.fiscal_year), today - timedelta(days=60), today),
    )
    said = _simulated(campaign, FINISHED_CALLS)
    calling.close_campaign(actor=User.objects.get(username="supervisor"), campaign=campaign)
    return f"Campaign {campaign.name!r} called through and closed; {said}"


def load_demo_campaign() -> str:
    """A running campaign over 大垣市's list of this fiscal year, worked by the demo
    operator, with a short simulated calling day by the two simulated operators; its
    calling period runs from a month ago to two months ahead (within the fiscal year).
    Once only; says what it did."""
    latest = _this_years_list(DEMO_CAMPAIGN_INSURER)
    if Campaign.objects.filter(lists=latest).exists():
        return ""
    today = timezone.localdate()
    campaign = _demo_campaign(
        latest,
        "終日架電可",
        ["operator", "sim-operator-1", "sim-operator-2"],
        **_within(
            FiscalYear(latest.fiscal_year), today - timedelta(days=30), today + timedelta(days=60)
        ),
    )
    return f"Campaign {campaign.name!r} started; {_simulated(campaign, SIMULATED_CALLS)}"


DEMO_LEAK_ROWS = 300


def load_demo_incident() -> str:
    """A scoped incident for the security officer's screens and the inquiry desk: a
    synthetic leaked file of 300 stored people (re-typed, with strangers and the
    canaries of the lists they come from), scoped. Once only; says what it did. Making
    the file opens stored people past the reveal gate, which raises its critical alert:
    the demo's alert queue shows it."""
    from yobikake.incidents.drill import scope_synthetic_leak
    from yobikake.incidents.models import Incident

    if Incident.objects.exists() or not TargetList.objects.exists():
        return ""
    incident = scope_synthetic_leak(
        rows=DEMO_LEAK_ROWS, title="デモ：名簿業者のサイトで見つかった流出ファイル"
    )
    return (
        f"Scoped a synthetic leaked file: incident #{incident.pk}, {incident.rows} rows, "
        f"{incident.people} persons named, {incident.persons} list entries."
    )


def load_demo_retention() -> str:
    """Run the retention schedule over the demo's lists: it shreds the one expired list
    (DEMO_EXPIRED_LIST) and certifies it. Once only; and not at all on a demo database
    made before deadlines were set this way, where it would shred every list."""
    from yobikake.exports import retention
    from yobikake.exports.models import DeletionCertificate

    if DeletionCertificate.objects.exists():
        return ""
    due = list(retention.overdue_lists())
    name, year = DEMO_EXPIRED_LIST
    if [(t.insurer.name, t.fiscal_year) for t in due] != [(name, year)]:
        return (
            f"Retention: not run, {len(due)} lists are past their deadline "
            "(see /retention/; `yobikake retention enforce` shreds them)."
        )
    result = retention.enforce_retention()
    if not result.shredded:
        return f"Retention: the expired list could not be shredded: {result.failed}"
    certificate = result.shredded[0]
    return (
        f"Retention: {name}'s FY{year} list (#{certificate.list_id}) was past its deadline and "
        f"is shredded; its deletion certificate: /retention/certificates/{certificate.pk}/"
    )


DEMO_RESULTS_SEED = 2037  # a draw whose sample shows about the planted effect


def _finished_campaign() -> Campaign | None:
    return (
        Campaign.objects.filter(insurer__name=DEMO_FINISHED_INSURER, state=Campaign.State.CLOSED)
        .order_by("pk")
        .first()
    )


def load_demo_results() -> str:
    """Checkup results on the finished demo campaign (岐阜市) with a planted effect of
    calling (control group 30%, called arm 38%), so that its effect page has a chart.
    Synthetic: written directly, not through an insurer's upload, and marked so on the
    record and on the page. Once only; says what it did."""
    campaign = _finished_campaign()
    if campaign is None or campaign.call_targets.exclude(attended_on=None).exists():
        return ""
    attended = plant_checkup_results(campaign, p0=0.30, effect=0.08, seed=DEMO_RESULTS_SEED)
    return f"Checkup results planted on {campaign.name!r}: {attended} attended (SYNTHETIC)"


def load_demo_export() -> str:
    """岐阜市's staff ask for the finished campaign's results file; the request waits
    for the federation's approval (fed-admin, /exports/approvals/), after which staff-gifu
    downloads it once, encrypted to the insurer's age key. Once only."""
    from yobikake.exports.models import Approval
    from yobikake.exports.results import request_results

    campaign = _finished_campaign()
    if campaign is None or Approval.objects.exists():
        return ""
    approval = request_results(actor=User.objects.get(username="staff-gifu"), campaign=campaign)
    return (
        f"Results export of {campaign.name!r} requested by staff-gifu: approval #{approval.pk} "
        "waits for fed-admin at /exports/approvals/."
    )
