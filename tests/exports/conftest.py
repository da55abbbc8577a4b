import csv
import io
from dataclasses import dataclass

import pyrage
import pytest

from tests.incidents import conftest as incidents
from tests.incidents.leaks import scoped_leak
from yobikake.exports import services
from yobikake.exports.models import Approval
from yobikake.incidents.notification import request_notification_list

canaries = incidents.canaries  # the fixture, here too


@pytest.fixture
def identities(world, custody):
    """A key pair per insurer, as each would make with age-keygen; the public halves are
    registered by the insurers' own staff and confirmed in custody by the security
    officer. The private halves exist in the test only."""
    keys = {}
    for insurer, staff in ((world.insurer_a, world.staff_a), (world.insurer_b, world.staff_b)):
        identity = pyrage.x25519.Identity.generate()
        services.register_insurer_key(actor=staff, public_key=str(identity.to_public()))
        custody.custodian.confirm_recipient(insurer.pk, str(identity.to_public()))
        keys[insurer.pk] = identity
    return keys


@dataclass
class Requested:
    leak: object
    approval: Approval


@pytest.fixture
def requested(world, identities, tmp_path, settings):
    """A scoped leak, and the security officer's request for insurer A's list (without
    watermark rows, so that the file holds exactly the persons: the watermark has its
    own tests)."""
    settings.YOBIKAKE_EXPORT_WATERMARK_ROWS = 0
    leak = scoped_leak(world, tmp_path)
    approval = request_notification_list(
        actor=world.security, incident=leak.incident, insurer=world.insurer_a
    )
    return Requested(leak, approval)


def decrypt_csv(data: bytes, identity) -> list[list[str]]:
    text = pyrage.decrypt(data, [identity]).decode("utf-8")
    assert text.startswith("\ufeff")  # a BOM, for Excel
    return list(csv.reader(io.StringIO(text[1:])))
