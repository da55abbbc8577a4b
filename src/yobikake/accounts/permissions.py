"""Every permission in one enum, `scope:resource:action`, and the one role → permission table.

Nothing else decides what a user may do: not `is_staff`, not `is_superuser` (which grants
at most what a sysadmin has), not Django's per-model permissions.
"""

from enum import StrEnum

from django.db import models
from django.utils.translation import gettext_lazy as _


class OrganizationKind(models.TextChoices):
    FEDERATION = "federation", _("Federation")
    INSURER = "insurer", _("Insurer")
    CALL_CENTRE = "call_centre", _("Call-centre contractor")
    MAINTENANCE = "maintenance", _("Maintenance contractor")


CONTRACTOR_KINDS = frozenset({OrganizationKind.CALL_CENTRE, OrganizationKind.MAINTENANCE})


class Role(models.TextChoices):
    FEDERATION_ADMIN = "federation_admin", _("Federation admin")
    INSURER_STAFF = "insurer_staff", _("Insurer staff")
    SUPERVISOR = "supervisor", _("Supervisor")
    OPERATOR = "operator", _("Operator")
    RESEARCHER = "researcher", _("Researcher")
    SYSADMIN = "sysadmin", _("System administrator")
    SECURITY_OFFICER = "security_officer", _("Security officer")
    INQUIRY_DESK = "inquiry_desk", _("Inquiry desk")


class Permission(StrEnum):
    INSURER_ANY_VIEW = "insurer:any:view"
    INSURER_OWN_VIEW = "insurer:own:view"
    INSURER_ANY_MANAGE = "insurer:any:manage"
    CONTRACT_ANY_MANAGE = "contract:any:manage"
    PARTICIPATION_MATRIX_VIEW = "participation:matrix:view"
    AGGREGATE_ANY_VIEW = "aggregate:any:view"
    LIST_OWN_IMPORT = "list:own:import"
    PROGRESS_OWN_VIEW = "progress:own:view"
    EXPORT_OWN_REQUEST = "export:own:request"
    EXPORT_OWN_DOWNLOAD = "export:own:download"
    EXPORT_ANY_APPROVE = "export:any:approve"
    CAMPAIGN_ANY_RUN = "campaign:any:run"
    CAMPAIGN_OWN_APPROVE = "campaign:own:approve"
    OPERATOR_ANY_ASSIGN = "operator:any:assign"
    PROGRESS_LIVE_VIEW = "progress:live:view"
    TARGET_REVEAL_CALL = "target:reveal:call"
    TARGET_REVEAL_RESEARCH = "target:reveal:research"
    SYSTEM_ANY_OPERATE = "system:any:operate"
    ACCOUNT_USER_MANAGE = "account:user:manage"
    ACCOUNT_ROLE_REQUEST = "account:role:request"
    ACCOUNT_ROLE_APPROVE = "account:role:approve"
    AUDIT_LOG_VIEW = "audit:log:view"
    ALERT_ANY_MANAGE = "alert:any:manage"
    INCIDENT_ANY_MANAGE = "incident:any:manage"
    INCIDENT_INQUIRY_LOOKUP = "incident:inquiry:lookup"
    KEY_SERVICE_MANAGE = "key:service:manage"
    RETENTION_ANY_MANAGE = "retention:any:manage"
    API_TOKEN_CREATE = "api:token:create"  # noqa: S105 - a permission name


P = Permission

# Permissions that put residents' personal data in front of the holder. The inquiry
# desk's lookup is one: told a name and a birth date, it answers which insurer the person
# is insured with and in which years they were on a list.
PERSONAL_DATA_PERMISSIONS = frozenset(
    {
        P.LIST_OWN_IMPORT,
        P.EXPORT_OWN_DOWNLOAD,
        P.TARGET_REVEAL_CALL,
        P.TARGET_REVEAL_RESEARCH,
        P.INCIDENT_INQUIRY_LOOKUP,
    }
)
# Permissions that approve other people's actions; a sysadmin granting these alone would
# bypass the second person, so granting them needs one too.
APPROVAL_PERMISSIONS = frozenset(
    {P.ACCOUNT_ROLE_APPROVE, P.EXPORT_ANY_APPROVE, P.CAMPAIGN_OWN_APPROVE}
)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.FEDERATION_ADMIN: frozenset(
        {
            P.INSURER_ANY_VIEW,
            P.INSURER_ANY_MANAGE,
            P.CONTRACT_ANY_MANAGE,
            P.PARTICIPATION_MATRIX_VIEW,
            P.AGGREGATE_ANY_VIEW,
            P.EXPORT_ANY_APPROVE,
            P.ACCOUNT_ROLE_APPROVE,
            P.API_TOKEN_CREATE,
        }
    ),
    Role.INSURER_STAFF: frozenset(
        {
            P.INSURER_OWN_VIEW,
            P.LIST_OWN_IMPORT,
            P.PROGRESS_OWN_VIEW,
            P.EXPORT_OWN_REQUEST,
            P.EXPORT_OWN_DOWNLOAD,
            # Its own campaigns' terms beyond the contract (calling hours, control group).
            P.CAMPAIGN_OWN_APPROVE,
            P.API_TOKEN_CREATE,
        }
    ),
    Role.SUPERVISOR: frozenset(
        {P.CAMPAIGN_ANY_RUN, P.OPERATOR_ANY_ASSIGN, P.PROGRESS_LIVE_VIEW, P.API_TOKEN_CREATE}
    ),
    Role.OPERATOR: frozenset({P.TARGET_REVEAL_CALL}),
    Role.RESEARCHER: frozenset({P.TARGET_REVEAL_RESEARCH}),
    Role.SYSADMIN: frozenset(
        {P.SYSTEM_ANY_OPERATE, P.ACCOUNT_USER_MANAGE, P.ACCOUNT_ROLE_REQUEST, P.API_TOKEN_CREATE}
    ),
    Role.SECURITY_OFFICER: frozenset(
        {
            P.AUDIT_LOG_VIEW,
            P.ALERT_ANY_MANAGE,
            P.INCIDENT_ANY_MANAGE,
            P.KEY_SERVICE_MANAGE,
            P.RETENTION_ANY_MANAGE,
            P.ACCOUNT_ROLE_APPROVE,
            P.API_TOKEN_CREATE,
        }
    ),
    # Answers a resident's "was I in the leak?" — and nothing else: no reveal, no lists.
    Role.INQUIRY_DESK: frozenset({P.INCIDENT_INQUIRY_LOOKUP}),
}

# Every user belongs to one organisation, and each role belongs to one kind of organisation.
ROLE_ORGANIZATION_KIND: dict[Role, OrganizationKind] = {
    Role.FEDERATION_ADMIN: OrganizationKind.FEDERATION,
    Role.SECURITY_OFFICER: OrganizationKind.FEDERATION,
    Role.INQUIRY_DESK: OrganizationKind.FEDERATION,
    Role.INSURER_STAFF: OrganizationKind.INSURER,
    Role.SUPERVISOR: OrganizationKind.CALL_CENTRE,
    Role.OPERATOR: OrganizationKind.CALL_CENTRE,
    Role.RESEARCHER: OrganizationKind.CALL_CENTRE,
    Role.SYSADMIN: OrganizationKind.MAINTENANCE,
}


def sees_personal_data(role: Role) -> bool:
    return bool(ROLE_PERMISSIONS[role] & PERSONAL_DATA_PERMISSIONS)


def needs_second_person(role: Role) -> bool:
    """Granting this role takes an approver other than the requester."""
    return sees_personal_data(role) or bool(ROLE_PERMISSIONS[role] & APPROVAL_PERMISSIONS)


# What each permission lets a person do, as the home page lists it.
PERMISSION_DESCRIPTIONS: dict[Permission, str] = {
    P.INSURER_ANY_VIEW: _("See every member insurer"),
    P.INSURER_OWN_VIEW: _("See your own insurer"),
    P.INSURER_ANY_MANAGE: _("Register and edit insurers"),
    P.CONTRACT_ANY_MANAGE: _("Manage contracts and campaigns"),
    P.PARTICIPATION_MATRIX_VIEW: _("See the participation matrix"),
    P.AGGREGATE_ANY_VIEW: _("See aggregate figures of all insurers"),
    P.LIST_OWN_IMPORT: _("Upload your insurer's target lists"),
    P.PROGRESS_OWN_VIEW: _("See your insurer's progress and results"),
    P.EXPORT_OWN_REQUEST: _("Request exports and deletion"),
    P.EXPORT_OWN_DOWNLOAD: _("Download approved exports"),
    P.EXPORT_ANY_APPROVE: _("Approve exports"),
    P.CAMPAIGN_ANY_RUN: _("Run campaigns"),
    P.CAMPAIGN_OWN_APPROVE: _("Approve your insurer's campaigns that go beyond the contract"),
    P.OPERATOR_ANY_ASSIGN: _("Assign operators"),
    P.PROGRESS_LIVE_VIEW: _("See live calling progress"),
    P.TARGET_REVEAL_CALL: _("Work the call queue, one person at a time"),
    P.TARGET_REVEAL_RESEARCH: _("Research missing phone numbers for assigned people"),
    P.SYSTEM_ANY_OPERATE: _("Deploy, migrate and back up the system"),
    P.ACCOUNT_USER_MANAGE: _("Manage accounts"),
    P.ACCOUNT_ROLE_REQUEST: _("Request roles for accounts"),
    P.ACCOUNT_ROLE_APPROVE: _("Approve role requests"),
    P.AUDIT_LOG_VIEW: _("Read the audit log"),
    P.ALERT_ANY_MANAGE: _("Handle alerts"),
    P.INCIDENT_ANY_MANAGE: _("Handle incidents and leak scoping"),
    P.INCIDENT_INQUIRY_LOOKUP: _("Tell residents who call whether a leak included them"),
    P.KEY_SERVICE_MANAGE: _("Manage the key service"),
    P.RETENTION_ANY_MANAGE: _("Enforce retention"),
    P.API_TOKEN_CREATE: _("Create personal API tokens"),
}
