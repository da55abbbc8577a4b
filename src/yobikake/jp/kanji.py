"""Variant kanji (旧字体・異体字) folded to their standard forms, for matching keys only:
髙橋 and 高橋 are one person to an index, but display keeps the character that was sent."""

import re
from importlib.resources import files

# Variation selectors choose a glyph, such as the 葛 of 葛飾, without changing the character.
_VARIATION_SELECTOR = "\ufe00-\ufe0f\U000e0100-\U000e01ef"
_VARIATION_SELECTORS = re.compile(f"[{_VARIATION_SELECTOR}]")


def _load_variants() -> dict[str, str]:
    text = files("yobikake.jp").joinpath("data/kanji_variants.tsv").read_text(encoding="utf-8")
    return dict(
        line.split("\t", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


_VARIANTS = _load_variants()
_TABLE: dict[int, str | None] = {
    **{ord(variant): standard for variant, standard in _VARIANTS.items()},
    **dict.fromkeys((*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0))),
}
# str.translate looks every character up in the table, several times slower than this
# search, and most text has nothing to fold.
_FOLDABLE = re.compile(f"[{''.join(_VARIANTS)}{_VARIATION_SELECTOR}]")


def fold_variants(text: str) -> str:
    """The text with variant kanji replaced by their standard forms (髙→高, 﨑→崎, 澤→沢)
    and variation selectors dropped."""
    return text.translate(_TABLE) if _FOLDABLE.search(text) else text


def drop_variation_selectors(text: str) -> str:
    return _VARIATION_SELECTORS.sub("", text)
