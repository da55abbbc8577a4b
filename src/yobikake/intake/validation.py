"""Checking one row of a list and turning it into a `Person` in display form. Every
problem is a `Finding` — row, field, cell and a reason code — never the value itself,
which may be someone's name."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from django.utils.translation import gettext_lazy as _

from yobikake.jp import normalize
from yobikake.jp.dates import InvalidDate, age_on, parse_date
from yobikake.jp.insured_numbers import InvalidInsuredNumber, parse_insured_number
from yobikake.jp.phones import InvalidPhone, parse_phone
from yobikake.jp.postal import InvalidPostalCode, format_postal_code, parse_postal_code
from yobikake.synth.people import Person

YOUNGEST, OLDEST = 40, 74  # the specific health checkup's ages
# A cell starting with one of these is run as a formula by spreadsheet programs.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_STARTS = frozenset(FORMULA_PREFIXES)
SEX_CODES = {
    "1": "1",
    "2": "2",
    "男": "1",
    "女": "2",
    "男性": "1",
    "女性": "2",
    "m": "1",
    "f": "2",
}
_KATAKANA = {chr(c) for c in range(0x30A1, 0x30FB)} | {"ー", " ", "ヴ", "・"}

FINDING_MESSAGES = {
    "missing": _("Required value missing."),
    "formula": _("The value starts like a spreadsheet formula (= + - @); it was not stored."),
    "kana": _("The kana name holds characters other than kana."),
    "sex": _("Sex must be 1, 2, 男 or 女."),
    "birth_date_format": _("The date of birth is not a date."),
    "birth_date_impossible": _("The date of birth does not exist (e.g. 30 February)."),
    "birth_date_era": _("The date of birth lies outside its era."),
    "age": _("The age is not a number."),
    "age_range": _("Not aged 40–74 at the end of the fiscal year."),
    "postal_code": _("The postal code is not 7 digits."),
    "phone_format": _("The phone number is not a phone number."),
    "phone_impossible": _("No such Japanese phone number can exist."),
    "insured_number": _("The insured number has characters or a length it cannot have."),
    "duplicate_in_file": _("The same person appears earlier in this file."),
    "insured_number_repeated": _("The same insured number appears earlier in this file."),
    "duplicate_in_year": _("The same person is already on this insurer's list for this year."),
    "too_many_columns": _("The row has more cells than the header."),
}


@dataclass(frozen=True)
class Finding:
    row: int
    field: str
    code: str
    cell: str = ""
    ref_row: int | None = None

    @property
    def message(self) -> str:
        return str(FINDING_MESSAGES[self.code])


def cell_ref(column: int, row: int) -> str:
    """Spreadsheet name of a cell: column 0, row 2 → "A2"."""
    letters = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters}{row}"


class RowChecker:
    """Checks the rows of one file, in order: each on its own, and its insured number
    against the earlier rows'."""

    def __init__(self, mapping: Mapping[str, int], fiscal_year: int) -> None:
        self._mapping = mapping
        self._year_end = date(fiscal_year + 1, 3, 31)
        # Each insured number seen, without its hyphen (as sealing.identity keys it),
        # and the first row that had it.
        self._insured_rows: dict[str, int] = {}

    def check(self, row: int, cells: list[str]) -> tuple[Person | None, list[Finding]]:
        findings: list[Finding] = []

        def where(field: str) -> str:
            column = self._mapping.get(field)
            return cell_ref(column, row) if column is not None else ""

        def value(field: str, required: bool = False) -> str:
            column = self._mapping.get(field)
            text = cells[column].strip() if column is not None and column < len(cells) else ""
            if not text:
                if required:
                    findings.append(Finding(row, field, "missing", where(field)))
                return ""
            # Checked as sent and as folded: NFKC turns a full-width ＝ or ＠ into = or @.
            first = text[0]
            folded = first if first.isascii() else normalize.fold(first)[:1]
            if (first in _FORMULA_STARTS or folded in _FORMULA_STARTS) and not (
                field == "phone" and folded == "+"
            ):
                findings.append(Finding(row, field, "formula", where(field)))
                return ""
            return text

        name = normalize.display_name(value("name_kanji", required=True))
        kana = normalize.display_kana(value("name_kana", required=True))
        if kana and not set(kana) <= _KATAKANA:
            findings.append(Finding(row, "name_kana", "kana", where("name_kana")))
        sex_text = value("sex", required=True)
        sex = SEX_CODES.get(normalize.fold(sex_text).lower(), "")
        if sex_text and not sex:
            findings.append(Finding(row, "sex", "sex", where("sex")))
        birth, age = self._birth_and_age(row, value, findings, where)
        address = normalize.fold(value("address", required=True))
        postal = self._postal(row, value("postal_code"), findings, where)
        phone = self._phone(row, value("phone"), findings, where)
        insured = self._insured(row, value("insured_number"), findings, where)
        if findings:
            return None, findings
        person = Person(
            name_kanji=name,
            name_kana=kana,
            sex=sex,
            birth_date=birth,
            phone=phone,
            postal_code=postal,
            address=address,
            insured_number=insured,
            age=age,
        )
        return person, []

    def _birth_and_age(self, row, value, findings, where):
        birth_text = value("birth_date", required="age" not in self._mapping)
        birth: date | None = None
        age: int | None = None
        if not birth_text and "age" not in self._mapping:
            return None, None  # reported as missing (or as a formula) already
        if birth_text:
            try:
                birth = parse_date(birth_text)
            except InvalidDate as exc:
                code = f"birth_date_{exc.reason}"
                if code not in FINDING_MESSAGES:
                    code = "birth_date_format"
                findings.append(Finding(row, "birth_date", code, where("birth_date")))
                return None, None
            age = age_on(birth, self._year_end)
        else:
            age_text = value("age", required=True)
            if not age_text:
                return None, None
            try:
                age = int(normalize.fold(age_text).removesuffix("歳"))
            except ValueError:
                findings.append(Finding(row, "age", "age", where("age")))
                return None, None
        if not YOUNGEST <= age <= OLDEST:
            field = "birth_date" if birth else "age"
            findings.append(Finding(row, field, "age_range", where(field)))
        return birth, (None if birth else age)

    def _postal(self, row, text, findings, where):
        if not text:
            return ""
        try:
            return format_postal_code(parse_postal_code(text))
        except InvalidPostalCode:
            findings.append(Finding(row, "postal_code", "postal_code", where("postal_code")))
            return ""

    def _phone(self, row, text, findings, where):
        if not text:
            return ""
        try:
            return parse_phone(text).national
        except InvalidPhone as exc:
            code = "phone_impossible" if exc.reason == "impossible" else "phone_format"
            findings.append(Finding(row, "phone", code, where("phone")))
            return ""

    def _insured(self, row, text, findings, where):
        if not text:
            return ""
        try:
            number = parse_insured_number(text)
        except InvalidInsuredNumber:
            findings.append(
                Finding(row, "insured_number", "insured_number", where("insured_number"))
            )
            return ""
        first = self._insured_rows.setdefault(number.replace("-", ""), row)
        if first != row:
            findings.append(
                Finding(
                    row,
                    "insured_number",
                    "insured_number_repeated",
                    where("insured_number"),
                    ref_row=first,
                )
            )
        return number
