import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp.phones import InvalidPhone, Phone, parse_phone

GIFU_CITY_HALL = Phone(digits="0582142966", national="058-214-2966", kind="fixed")
HYPHENS = ["-", "－", "‐", "ー", "ｰ", "−", "―", " ", "　"]


def is_valid(digits):
    # Through +81: parsed with region JP, a national 010… would read as the international prefix.
    return phonenumbers.is_valid_number(phonenumbers.parse("+81" + digits[1:]))


national_digits = st.from_regex(r"0[1-9][0-9]{8,9}", fullmatch=True)
valid_numbers = national_digits.filter(is_valid)


@pytest.mark.parametrize(
    "text",
    [
        "058-214-2966",
        "0582142966",
        " 058-214-2966 ",
        "０５８－２１４－２９６６",
        "058‐214‐2966",
        "058ー214ー2966",
        "058ｰ214ｰ2966",
        "058−214−2966",
        "058―214―2966",
        "058 214 2966",
        "058(214)2966",
        "０５８（２１４）２９６６",
        "058.214.2966",
        "+81 58-214-2966",
        "+81-58-214-2966",
        "+81 (0)58-214-2966",
        "＋８１５８２１４２９６６",
    ],
)
def test_every_written_form_of_a_number_gives_the_same_phone(text):
    assert parse_phone(text) == GIFU_CITY_HALL


def test_a_number_that_lost_its_leading_zero_in_a_spreadsheet_gets_it_back():
    assert parse_phone("582142966") == GIFU_CITY_HALL
    assert parse_phone("9012345678").digits == "09012345678"


@pytest.mark.parametrize(
    ("text", "national", "kind"),
    [
        ("03-1234-5678", "03-1234-5678", "fixed"),
        ("09012345678", "090-1234-5678", "mobile"),
        ("080-1234-5678", "080-1234-5678", "mobile"),
        ("050-1234-5678", "050-1234-5678", "ip"),
        ("0120-123-456", "0120-123-456", "toll_free"),
        ("0800-123-4567", "0800-123-4567", "toll_free"),
        ("0570-000-000", "0570-000-000", "other"),
    ],
)
def test_numbers_are_formatted_and_classified_by_the_numbering_plan(text, national, kind):
    phone = parse_phone(text)
    assert (phone.national, phone.kind) == (national, kind)
    assert str(phone) == national


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (" -- ", "empty"),
        ("なし", "format"),
        ("tel:0582142966", "format"),
        ("058-214-2966 内線12", "format"),
        ("058-214-2966/090-1234-5678", "format"),
        ("+81-58-214-296x", "format"),
        ("123", "impossible"),
        ("0", "impossible"),
        ("0058-214-2966", "impossible"),
        ("010-1234-5678", "impossible"),
        ("090-0123-4567", "impossible"),
        ("058-214-29666", "impossible"),
        ("58-214-2966", "impossible"),
        ("+1 650-253-0000", "impossible"),
    ],
)
def test_what_is_not_a_japanese_number_is_refused_with_a_reason(text, reason):
    with pytest.raises(InvalidPhone) as excinfo:
        parse_phone(text)
    assert excinfo.value.reason == reason


@given(national_digits)
def test_a_number_is_accepted_exactly_when_libphonenumber_calls_it_valid(digits):
    try:
        phone = parse_phone(digits)
    except InvalidPhone as error:
        assert error.reason == "impossible"
        assert not is_valid(digits)
    else:
        assert is_valid(digits)
        assert phone.digits == digits


@given(valid_numbers, st.sampled_from(HYPHENS), st.booleans())
def test_phone_digits_of_a_valid_number_survive_any_hyphen_style(digits, hyphen, full_width):
    formatted = parse_phone(digits).national.replace("-", hyphen)
    if full_width:
        formatted = formatted.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert parse_phone(formatted).digits == digits


@given(valid_numbers)
def test_the_international_form_of_a_valid_number_gives_its_national_digits(digits):
    assert parse_phone(f"+81 {digits[1:]}").digits == digits


@given(valid_numbers)
def test_a_formatted_number_parses_back_to_itself(digits):
    phone = parse_phone(digits)
    assert parse_phone(phone.national) == phone
