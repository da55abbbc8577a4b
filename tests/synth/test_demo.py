import os
import re
import subprocess
import sys
from collections import Counter
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.conftest import current_code
from yobikake.accounts.models import Organization, RoleAssignment, User
from yobikake.accounts.selectors import active_roles
from yobikake.calling.models import Campaign
from yobikake.exports.selectors import current_key
from yobikake.intake.models import TargetList
from yobikake.synth.demo import DEMO_USERS
from yobikake.synth.gifu import FISCAL_YEARS, seed_insurers
from yobikake.tenancy.fiscal import FiscalYear
from yobikake.tenancy.models import Contract, Insurer


def test_seed_table_is_the_press_release_table():
    insurers = seed_insurers()
    assert len(insurers) == 27
    assert sum(i.lists_submitted_total for i in insurers) == 483_468
    per_year = Counter(y for i in insurers for y in i.fiscal_years)
    assert [per_year[y] for y in FISCAL_YEARS] == [11, 15, 19, 19, 21, 21]
    assert [i.name for i in insurers if i.is_nhi_association] == ["建設国保"]


@pytest.mark.django_db
def test_demo_loads_the_seed_and_one_user_per_role_and_is_safe_to_repeat():
    for _ in range(2):
        out = StringIO()
        call_command("demo", "--no-serve", stdout=out)
    assert Insurer.objects.count() == 27
    # The seed's contracts, and this year's of the two demo campaigns' insurers (a
    # campaign lies within its contract; the seed's years are past).
    this_year = FiscalYear.of(timezone.localdate()).year
    assert Contract.objects.count() == 106 + 2
    gifu = Insurer.objects.get(name="岐阜市")
    assert sorted(gifu.contracts.values_list("fiscal_year", flat=True)) == [2019, 2021, this_year]
    assert Campaign.objects.filter(fiscal_year=this_year).count() == 2
    assert Insurer.objects.get(name="建設国保").kind == Insurer.Kind.NHI_ASSOCIATION
    # The demo insurer can receive exports: its age public key (only that) is registered.
    assert current_key(gifu.pk).public_key.startswith("age1")
    assert User.objects.count() == len(DEMO_USERS)
    for demo in DEMO_USERS:
        assert active_roles(User.objects.get(username=demo.username)) == {demo.role}
    assert not RoleAssignment.objects.filter(status="pending").exists()
    # Roles that see personal data went through a second person.
    operator = RoleAssignment.objects.get(user__username="operator")
    assert operator.requested_by.username == "sysadmin"
    assert operator.decided_by.username == "fed-admin"
    assert "staff-gifu" in out.getvalue() and "yobikake-demo-2026" in out.getvalue()
    # The seed's lists at a small scale, imported once: 106 lists, a few bad rows left out.
    lists = TargetList.objects.exclude(fiscal_year=this_year)
    assert lists.count() == 106
    assert 4_800 < sum(tl.row_count for tl in lists) <= 4_832
    assert sum(tl.rows_submitted for tl in lists) == 4_832


@pytest.mark.django_db
def test_demo_prints_current_totp_for_demo_users_only():
    call_command("demo", "--no-serve", stdout=StringIO())
    out = StringIO()
    call_command("demo", "--totp", "operator", stdout=out)
    device = User.objects.get(username="operator").totpdevice_set.get()
    assert out.getvalue().strip() == current_code(device)

    Organization.objects.filter(users__username="operator").update(is_demo=False)
    with pytest.raises(CommandError, match="not a demo user"):
        call_command("demo", "--totp", "operator")


def test_yobikake_demo_twice_from_a_fresh_home(tmp_path):
    env = dict(os.environ, YOBIKAKE_HOME=str(tmp_path / "var"))
    env.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "yobikake.cli", "demo", "--no-serve"]
    for _ in range(2):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert re.search(r"operator .* \d{6}", done.stdout)
    assert (tmp_path / "var" / "yobikake.sqlite3").exists()
    assert oct((tmp_path / "var").stat().st_mode & 0o777) == "0o700"


@pytest.mark.django_db
def test_demo_refuses_a_database_with_real_organisations():
    Organization.objects.create(name="本物の連合会", kind="federation")
    with pytest.raises(CommandError, match="real organisations"):
        call_command("demo", "--no-serve", stdout=StringIO())
    assert not User.objects.exists()
