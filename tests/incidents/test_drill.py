"""`yobikake incident drill`: the 2023 scenario replayed on demo data."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.custody_helpers import custody_of_real_data
from yobikake.accounts.models import User
from yobikake.audit.models import Alert
from yobikake.incidents.models import Incident


@pytest.mark.django_db
def test_the_drill_stops_the_sysadmin_detects_it_and_scopes_the_leaked_copy(canaries):
    call_command("demo", "--no-serve", stdout=StringIO())
    out = StringIO()
    call_command("incident", "drill", "--rows", "300", "--json", stdout=out)
    result = json.loads(out.getvalue())

    assert result["copy"]["values_looked_for"] > 20
    assert result["copy"]["values_found"] == 0  # the copy holds ciphertext only
    assert not [line for line in result["stopped"] if line.startswith("FAILED")]
    assert any("forged_authorization" in line for line in result["stopped"])
    assert "API scrape: 20 of 20 requests refused" in result["stopped"]
    rules = set(Alert.objects.values_list("rule", flat=True))
    assert {"forged_authorization", "repeated_denials", "canary_touched"} <= rules
    incident = Incident.objects.get(pk=result["incident"])
    assert incident.state == Incident.State.SCOPED
    scoped = result["scoping"]
    assert scoped["list_entries"] >= 0.95 * 300 * 0.9 and scoped["canaries"]
    assert all(c["list_id"] for c in scoped["canaries"])


@pytest.mark.django_db
def test_the_drill_refuses_a_real_installation(world):
    with pytest.raises(CommandError, match="demo installation"):
        call_command("incident", "drill", stdout=StringIO())


@pytest.mark.django_db
def test_the_drill_refuses_where_the_custodian_holds_real_data(request, canaries):
    """Demo organisations in the database are not enough: a custodian set up for real
    data opens nothing in bulk, so the drill stops before it has looked at anyone."""
    call_command("demo", "--no-serve", stdout=StringIO())
    custody_of_real_data(request)
    incidents = Incident.objects.count()
    with pytest.raises(CommandError, match="demo installation"):
        call_command("incident", "drill", stdout=StringIO())
    assert Incident.objects.count() == incidents
    assert not User.objects.filter(username__startswith="drill-root").exists()
