"""The blind indexes that find a person's row again: which parts of a person each index
kind takes, normalised, and their values under an insurer's index key. Called by the
services that write targets (intake, research) and by those that look people up."""

from dataclasses import dataclass
from datetime import date

from yobikake.jp import normalize
from yobikake.vault.blind import Indexer, IndexKind


@dataclass(frozen=True)
class IndexedFields:
    """The fields of a person that blind indexes are computed over, as the list gave them."""

    name_kanji: str
    name_kana: str
    birth_date: date | None
    phone: str
    address: str
    insured_number: str

    def parts(self) -> dict[IndexKind, tuple[str, ...]]:
        """The normalised parts of every index kind this person has all parts of."""
        return index_parts(
            self.name_kanji,
            self.name_kana,
            self.birth_date,
            self.phone,
            self.address,
            self.insured_number,
        )


def index_parts(
    name_kanji: str,
    name_kana: str,
    birth_date: date | None,
    phone: str,
    address: str,
    insured_number: str,
) -> dict[IndexKind, tuple[str, ...]]:
    """`IndexedFields.parts` without making the fields an object first (a list import
    indexes every person it seals)."""
    name = normalize.name_key(name_kanji)
    kana = normalize.kana_key(name_kana)
    birth = normalize.birth_key(birth_date) if birth_date else ""
    phone = normalize.phone_key(phone)
    address = normalize.address_key(address)
    candidates = {
        IndexKind.PHONE: (phone,),
        IndexKind.INSURED_NUMBER: (normalize.insured_number_key(insured_number),),
        IndexKind.KANA_BIRTH: (kana, birth),
        IndexKind.NAME_BIRTH: (name, birth),
        IndexKind.KANA_ADDRESS: (kana, address),
        IndexKind.NAME_ADDRESS: (name, address),
        IndexKind.KANA_PHONE: (kana, phone),
    }
    return {kind: parts for kind, parts in candidates.items() if all(parts)}


def index_values(indexer: Indexer, fields: IndexedFields) -> list[tuple[IndexKind, bytes]]:
    return [(kind, indexer.value(kind, *parts)) for kind, parts in fields.parts().items()]
