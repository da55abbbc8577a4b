"""Every audit event tag in one enum, `scope:resource:action` like the permissions."""

from enum import StrEnum


class AuditTag(StrEnum):
    # Logging in and out
    LOGIN_SUCCESS = "auth:login:success"
    LOGIN_FAILURE = "auth:login:failure"
    LOGIN_LOCKOUT = "auth:login:lockout"
    LOGOUT = "auth:session:logout"
    SESSION_UNBOUND = "auth:session:unbound"  # a session no login made, ended
    ACCOUNT_EXPIRED = "auth:account:expired"
    MFA_ENROLL = "auth:mfa:enroll"
    PERMISSION_DENY = "auth:permission:deny"
    # Accounts and roles
    INSTALL_BOOTSTRAP = "account:install:bootstrap"
    ORGANIZATION_CREATE = "account:organization:create"
    USER_CREATE = "account:user:create"
    ROLE_REQUEST = "role:grant:request"
    ROLE_APPROVE = "role:grant:approve"
    ROLE_REFUSE = "role:grant:refuse"
    ROLE_REVOKE = "role:grant:revoke"
    API_TOKEN_CREATE = "api:token:create"  # noqa: S105 - an event tag
    API_TOKEN_REVOKE = "api:token:revoke"  # noqa: S105 - an event tag
    AUTHZ_FORGED = "role:assignment:forged"
    # Tenancy
    INSURER_REGISTER = "insurer:record:register"
    INSURER_DENY = "insurer:record:deny"
    CONTRACT_CREATE = "contract:record:create"
    CONTRACT_BILLING_SET = "contract:billing:set"
    CONTRACT_DENY = "contract:record:deny"
    # Target lists and the vault
    LIST_LOAD = "list:record:load"
    LIST_IMPORT = "list:file:import"
    LIST_DENY = "list:record:deny"
    LIST_SHRED = "list:record:shred"
    LIST_SUPERSEDE = "list:record:supersede"  # replaced by a later list of its year
    GRANT_ISSUE = "vault:grant:issue"
    GRANT_RELEASE = "vault:grant:release"
    KEY_ROTATE = "vault:key:rotate"
    INDEX_KEY_CREATE = "vault:index-key:create"
    # Calling
    CAMPAIGN_CREATE = "campaign:record:create"
    CAMPAIGN_START = "campaign:record:start"
    CAMPAIGN_CLOSE = "campaign:record:close"
    CAMPAIGN_ASSIGN = "campaign:operator:assign"
    CAMPAIGN_DENY = "campaign:record:deny"
    CALL_CHECKOUT = "call:task:checkout"
    CALL_OUTCOME = "call:attempt:record"
    RESEARCH_RESULT = "research:task:record"
    DIRECTORY_IMPORT = "research:directory:import"
    CHECKUP_RESULTS_IMPORT = "checkup:results:import"  # counts only, never who
    CHECKUP_RESULTS_SYNTHETIC = "checkup:results:synthetic"  # planted by synth (demo, tests)
    # Personal data (written by the reveal gate, the canaries and the exports)
    REVEAL_CALL = "target:reveal:call"
    REVEAL_RESEARCH = "target:reveal:research"
    REVEAL_EXPORT = "target:reveal:export"
    CANARY_TOUCH = "incident:canary:touch"
    # Synthetic data made from the store (test and benchmark installations only)
    SYNTH_LEAK = "synth:leak:from-store"
    # Incidents
    INCIDENT_OPEN = "incident:record:open"
    INCIDENT_SCOPE = "incident:file:scope"
    INCIDENT_RESCOPE = "incident:file:rescope"  # a failed scoping's file uploaded again
    INCIDENT_DENY = "incident:record:deny"
    INCIDENT_REPORT = "incident:report:edit"
    INCIDENT_INQUIRY = "incident:inquiry:lookup"  # the inquiry desk asked about a caller
    # Exports: insurers' keys, the second person's approval, a file for another insurer
    EXPORT_KEY_REGISTER = "export:key:register"
    APPROVAL_REQUEST = "export:approval:request"
    APPROVAL_APPROVE = "export:approval:approve"
    APPROVAL_REFUSE = "export:approval:refuse"
    EXPORT_DENY = "export:file:deny"
    EXPORT_WATERMARK = "export:watermark:create"  # how many rows, and a digest of them
    # Retention: a list past its deadline, its deletion certificate, a certificate of
    # another insurer asked for
    RETENTION_OVERDUE = "list:retention:overdue"
    RETENTION_MOVED = "contract:retention:moved"  # the column disagrees with the record
    CERTIFICATE_ISSUE = "list:certificate:issue"
    CERTIFICATE_DENY = "list:certificate:deny"
    # The audit log itself
    CHECKPOINT_SIGN = "audit:checkpoint:sign"
    VERIFY_FAILURE = "audit:verify:failure"
    GUARDS_INSTALL = "audit:guards:install"  # the append-only triggers put back
    PROOF_DENY = "audit:proof:deny"  # an inclusion proof of another insurer's event asked for
    PROCESS_START = "audit:process:start"  # the settings and code a process started with
    SETTINGS_CHANGE = "audit:settings:change"  # one of them, changed since the last start
    ALERT_RAISE = "alert:record:raise"
    ALERT_ACKNOWLEDGE = "alert:record:acknowledge"
    ALERT_CLOSE = "alert:record:close"
    ALERT_RESTORE = "alert:record:restore"  # a row deleted, edited or written by SQL
    ALERT_DELIVER = "alert:record:deliver"  # what mail and the webhook said of it


REVEAL_TAGS = frozenset({AuditTag.REVEAL_CALL, AuditTag.REVEAL_RESEARCH, AuditTag.REVEAL_EXPORT})
