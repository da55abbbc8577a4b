from datetime import date

import pytest

from yobikake.accounts.models import Organization
from yobikake.accounts.permissions import OrganizationKind
from yobikake.accounts.services import NotPermitted
from yobikake.jp.insurer_numbers import with_check_digit
from yobikake.tenancy import services
from yobikake.tenancy.models import Contract, Insurer


def test_registering_an_insurer_creates_its_organisation(world):
    insurer = services.register_insurer(
        actor=world.fed_admin,
        number=with_check_digit("21950"),
        name="新市",
        kind=Insurer.Kind.MUNICIPALITY,
    )
    assert insurer.prefecture == "岐阜県"
    org = Organization.objects.get(insurer=insurer)
    assert (org.kind, org.name) == (OrganizationKind.INSURER, "新市")


def test_full_width_insurer_number_is_stored_as_ascii(world):
    number = with_check_digit("21951")
    insurer = services.register_insurer(
        actor=world.fed_admin,
        number=number.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        name="全角市",
        kind=Insurer.Kind.MUNICIPALITY,
    )
    assert insurer.number == number


@pytest.mark.parametrize(
    ("number", "message"),
    [("219500", "検証番号"), ("2195", "6桁"), ("33120015", "6桁")],
)
def test_invalid_insurer_numbers_are_refused_in_japanese(world, number, message):
    with pytest.raises(services.TenancyError, match=message):
        services.register_insurer(
            actor=world.fed_admin, number=number, name="x", kind=Insurer.Kind.MUNICIPALITY
        )
    assert not Insurer.objects.filter(name="x").exists()


def test_only_the_federation_admin_registers_insurers(world):
    for actor in (world.sysadmin, world.staff_a, world.security, world.operator):
        with pytest.raises(NotPermitted):
            services.register_insurer(
                actor=actor,
                number=with_check_digit("21960"),
                name="y",
                kind=Insurer.Kind.MUNICIPALITY,
            )


def _contract(world, **overrides):
    fields = dict(
        actor=world.fed_admin,
        insurer=world.insurer_b,
        fiscal_year=2023,
        calling_starts=date(2023, 9, 1),
        calling_ends=date(2023, 12, 20),
        retention_until=date(2025, 3, 31),
    )
    fields.update(overrides)
    return services.create_contract(**fields)


def test_contract_is_created_for_one_fiscal_year(world):
    contract = _contract(world)
    assert str(contract.fy) == "令和5年度（FY2023）"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"calling_ends": date(2024, 4, 1)}, "範囲内"),
        ({"calling_starts": date(2023, 3, 31)}, "範囲内"),
        ({"retention_until": date(2023, 12, 19)}, "保存期限"),
        ({"fiscal_year": 2022}, "既に"),
    ],
)
def test_bad_contracts_are_refused_and_nothing_is_written(world, overrides, message):
    if overrides.get("fiscal_year") == 2022:
        overrides |= {
            "calling_starts": date(2022, 9, 1),
            "calling_ends": date(2022, 12, 1),
            "retention_until": date(2024, 3, 31),
        }
    before = Contract.objects.count()
    with pytest.raises(services.TenancyError, match=message):
        _contract(world, **overrides)
    assert Contract.objects.count() == before


def test_insurer_staff_cannot_create_contracts(world):
    with pytest.raises(NotPermitted):
        _contract(world, actor=world.staff_b)
