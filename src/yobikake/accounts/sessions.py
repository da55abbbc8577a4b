"""Sessions bound to their login.

Whoever holds SECRET_KEY and the database can write a session row for any account
(`SessionStore` with `_auth_user_id`) without logging in. So a session is honoured only
with the login that made it: the login's audit event carries a digest of the new
session's key, the session names that event, and the custodian is told of the login as
it happens (`CustodianPort.record_login`). The first time a process sees a session, and
again every `CHECK_AGAIN_SECONDS`, both are checked — the event (genuine under the audit
MAC, this account's, this session's) and the custodian's record. A session that fails
either is ended, on the record, and the custodian raises its own critical alert.

What the checks cost stays off the hot path: one query and one custodian call per
session and process every few minutes, none on the requests between (`_Checked`).
"""

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict

from django.contrib.sessions.backends.base import SessionBase

from yobikake.accounts.models import User
from yobikake.audit.keys import audit_keys
from yobikake.audit.models import Event
from yobikake.audit.services import append_event
from yobikake.audit.tags import AuditTag
from yobikake.audit.verify import genuine
from yobikake.custody.protocol import CustodyRefused, CustodyUnavailable
from yobikake.vault.custodian import custodian

log = logging.getLogger(__name__)

LOGIN_EVENT = "_login_event"
CHECK_AGAIN_SECONDS = 300
_REMEMBERED = 10_000


def session_digest(session_key: str) -> str:
    """`sha256:` and 224 bits of the key's SHA-256 in hex: one of the audit log's short
    codes, never the key itself (which would be a credential)."""
    return "sha256:" + hashlib.sha256(session_key.encode()).hexdigest()[:56]


def record_login(*, session: SessionBase, user: User, details: dict[str, int]) -> Event:
    """The login's event, naming the session it made (inside the login's transaction,
    after the session's key was cycled), and the custodian told of it at once: a login
    rolled back leaves custody a record of a session key no one was given."""
    if session.session_key is None:
        session.save()
    digest = session_digest(str(session.session_key))
    event = append_event(
        tag=AuditTag.LOGIN_SUCCESS, actor=user, details={**details, "session": digest}
    )
    session[LOGIN_EVENT] = event.seq
    _tell_custodian(user.pk, event.seq, digest)
    return event


def record_logout(*, session: SessionBase, user: User) -> None:
    """Tell the custodian the session is over (before it is flushed), and forget it here:
    put back in the session store, it is refused."""
    if session.session_key is None:
        return
    checked.drop(session.session_key)
    try:
        custodian().record_logout(user.pk, session_digest(session.session_key))
    except (CustodyUnavailable, CustodyRefused) as exc:
        log.warning("the custodian was not told of a logout: %s", exc)


def _tell_custodian(user_id: int, event_seq: int, digest: str) -> None:
    try:
        custodian().record_login(user_id, event_seq, digest)
    except (CustodyUnavailable, CustodyRefused) as exc:
        # The session still works on the event alone while custody is away; the
        # custodian's reconciliation alerts the login it never heard of.
        log.warning("the custodian was not told of login event %s: %s", event_seq, exc)


class _Checked:
    """Sessions this process found bound, by key: with the account, and when."""

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def fresh(self, key: str, user_id: int) -> bool:
        with self._lock:
            seen = self._seen.get(key)
        return (
            seen is not None
            and seen[0] == user_id
            and time.monotonic() - seen[1] < CHECK_AGAIN_SECONDS
        )

    def remember(self, key: str, user_id: int) -> None:
        with self._lock:
            self._seen[key] = (user_id, time.monotonic())
            self._seen.move_to_end(key)
            while len(self._seen) > _REMEMBERED:
                self._seen.popitem(last=False)

    def drop(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def forget(self) -> None:
        with self._lock:
            self._seen.clear()


checked = _Checked()


def is_bound(session: SessionBase, user: User) -> bool:
    """Whether `session` of `user` was made by a login this installation recorded and
    the custodian was told of."""
    key = session.session_key
    if key is None:
        return False
    if checked.fresh(key, user.pk):
        return True
    digest = session_digest(key)
    seq = session.get(LOGIN_EVENT)
    seq = seq if type(seq) is int else None
    local = _event_binds(seq, user, digest)
    try:
        known = custodian().check_session(user.pk, seq, digest)
    except CustodyUnavailable:
        known = local  # the event alone, until custody answers again
    except CustodyRefused:
        known = False
    if local and known:
        checked.remember(key, user.pk)
    return local and known


def _event_binds(seq: int | None, user: User, digest: str) -> bool:
    event = (
        Event.objects.filter(seq=seq, tag=AuditTag.LOGIN_SUCCESS, actor_user_id=user.pk).first()
        if seq is not None
        else None
    )
    if event is None or not genuine(event, audit_keys().mac_key()):
        return False
    try:
        details = json.loads(event.details or "{}")
    except ValueError:
        return False
    return isinstance(details, dict) and details.get("session") == digest
