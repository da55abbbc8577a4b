"""Heartbeats to the custodian, which raises a critical alert on its own channel when
one stops (custody/watch.py): the web server and the task worker beat every
`EVERY_SECONDS` while they run, and each scheduled check (`audit sweep`, the audit
report, `retention enforce`) beats when it has run. A beat that cannot reach the
custodian is logged, never raised: the check itself is what matters, and the custodian
sees the silence."""

import logging
import threading

from yobikake.custody.protocol import CustodyRefused, CustodyUnavailable, Heartbeat
from yobikake.vault.custodian import custodian

log = logging.getLogger(__name__)

EVERY_SECONDS = 60.0


def beat(source: Heartbeat) -> bool:
    """Tell the custodian `source` is alive (or has just run); whether it heard."""
    try:
        custodian().heartbeat(source)
    except (CustodyUnavailable, CustodyRefused) as exc:
        log.warning("heartbeat %s not taken by the custodian: %s", source, exc)
        return False
    return True


def beat_in_background(source: Heartbeat, seconds: float = EVERY_SECONDS) -> threading.Event:
    """Beat now and every `seconds` from a daemon thread, until the returned event is
    set (or the process ends)."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                beat(source)
            except Exception:  # a beat must never end the loop: its silence is the alarm
                log.exception("heartbeat %s failed", source)
            if stop.wait(seconds):
                return

    threading.Thread(target=loop, name=f"heartbeat-{source}", daemon=True).start()
    return stop
