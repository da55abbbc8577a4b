"""Synthetic personal data the suite feeds into Yobikake where a careless system would
record it. No event may ever contain any of it (checked after every database test).
Besides these few hand-made values (they describe no one), every person a test loads
with `tests.conftest.load_people` is checked."""

SYNTHETIC_PERSONAL_DATA = (
    "山田太郎",
    "ヤマダタロウ",
    "ﾔﾏﾀﾞﾀﾛｳ",
    "090-1234-5678",
    "09012345678",
    "058-000-0000",
    "岐阜市神田町9丁目99番9号",
    "500-0000",
    "S45.3.2",
    "1234567890",
)

# People loaded by the current test (synth.people; cleared after each test).
LOADED_PEOPLE: list = []


def person_values(person) -> list[str]:
    """The personal values of a synthetic person, as stored and in the forms a careless
    system would log them (without spaces, phone digits only)."""
    values = [
        person.name_kanji,
        person.name_kana,
        person.address,
        person.insured_number,
        person.name_kanji.replace(" ", ""),
        person.name_kana.replace(" ", ""),
    ]
    if person.phone:
        values += [person.phone, person.phone.replace("-", "")]
    return values


def loaded_values() -> list[str]:
    return [v for person in LOADED_PEOPLE for v in person_values(person)]
