from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from yobikake.audit import chain


class Event(models.Model):
    """One entry of the append-only, hash-chained audit log. Ids only: never a name,
    phone number or address (`details` takes ids and short codes, see services)."""

    class Outcome(models.TextChoices):
        ALLOWED = "allowed", _("Allowed")
        DENIED = "denied", _("Denied")

    seq = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField(db_index=True)
    tag = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    reason = models.CharField(max_length=200, blank=True)
    actor_user_id = models.BigIntegerField(null=True)
    actor_username = models.CharField(max_length=150, blank=True)
    actor_organization_id = models.BigIntegerField(null=True)
    actor_roles = models.CharField(max_length=200, blank=True)
    subject_user_id = models.BigIntegerField(null=True)
    insurer_id = models.BigIntegerField(null=True, db_index=True)
    list_id = models.BigIntegerField(null=True)
    target_id = models.BigIntegerField(null=True)
    purpose = models.CharField(max_length=64, blank=True)
    client_ip = models.CharField(max_length=45, blank=True)
    details = models.TextField(blank=True)  # canonical JSON of ids and codes
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    mac = models.CharField(max_length=64)

    class Meta:
        ordering = ["seq"]
        indexes = [
            # A user's recent events (reveal budgets, alert rules) without reading their past.
            models.Index(fields=["actor_user_id", "at"], name="audit_event_actor_at"),
            # What happened to one target (grant releases, canary touches, scoping).
            models.Index(fields=["target_id", "tag"], name="audit_event_target_tag"),
            # What happened to one account (its roles revoked: read on every request).
            models.Index(fields=["subject_user_id", "tag"], name="audit_event_subject_tag"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_event_seq_positive")
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.tag}"

    def chained_values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in chain.FIELDS)


class ChainHead(models.Model):
    """The single row appenders lock to take the next sequence number in turn. It is a
    convenience, not evidence: verification never trusts it."""

    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default=chain.GENESIS_HASH)
    checkpoint_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"head @{self.seq}"


class Checkpoint(models.Model):
    """A signed statement that the log's head was `head_seq` with `head_hash`."""

    head_seq = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    at = models.DateTimeField(default=timezone.now)
    key_id = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)  # hex Ed25519

    class Meta:
        ordering = ["head_seq"]

    def __str__(self) -> str:
        return f"checkpoint @{self.head_seq}"


class Alert(models.Model):
    class Severity(models.TextChoices):
        INFO = "info", _("Info")
        WARNING = "warning", _("Warning")
        CRITICAL = "critical", _("Critical")

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        ACKNOWLEDGED = "acknowledged", _("Acknowledged")
        CLOSED = "closed", _("Closed")

    rule = models.CharField(_("rule"), max_length=64)
    severity = models.CharField(_("severity"), max_length=10, choices=Severity.choices)
    state = models.CharField(_("state"), max_length=14, choices=State.choices, default="open")
    subject_user_id = models.BigIntegerField(null=True)
    subject_username = models.CharField(max_length=150, blank=True)
    event_seq = models.BigIntegerField(null=True)  # the event that raised it
    summary = models.CharField(_("summary"), max_length=300)
    raised_at = models.DateTimeField(default=timezone.now, db_index=True)
    acknowledged_by_id = models.BigIntegerField(null=True)
    acknowledged_at = models.DateTimeField(null=True)
    closed_by_id = models.BigIntegerField(null=True)
    closed_at = models.DateTimeField(null=True)
    note = models.TextField(_("note"), blank=True)
    delivery = models.CharField(max_length=200, blank=True)  # what mail/webhook said

    class Meta:
        ordering = ["-raised_at"]

    def __str__(self) -> str:
        return f"{self.rule} ({self.state})"


class TreeNode(models.Model):
    """The hash of one whole 2**level-leaf subtree of the log's Merkle tree (audit/tree.py),
    level 10 (1,024 events) and up, kept so that a head and its proofs read a few rows
    instead of every event. A cache, not evidence: `audit verify` recomputes the tree from
    the events, and a wrong node yields a proof that custody and insurers refuse."""

    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["level", "index"], name="audit_tree_node_unique")
        ]

    def __str__(self) -> str:
        return f"node {self.level}/{self.index}"
