from importlib.resources import files

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp.kanji import drop_variation_selectors, fold_variants

TABLE_LINES = [
    line
    for line in files("yobikake.jp")
    .joinpath("data/kanji_variants.tsv")
    .read_text("utf-8")
    .splitlines()
    if not line.startswith("#")
]
TABLE = dict(line.split("\t") for line in TABLE_LINES)


@pytest.mark.parametrize(
    ("variant", "standard"),
    [
        ("髙", "高"),
        ("﨑", "崎"),
        ("嵜", "崎"),
        ("邉", "辺"),
        ("邊", "辺"),
        ("嶋", "島"),
        ("嶌", "島"),
        ("𠮷", "吉"),
        ("齋", "斎"),
        ("齊", "斉"),
        ("澤", "沢"),
        ("濱", "浜"),
        ("廣", "広"),
        ("櫻", "桜"),
        ("國", "国"),
        ("德", "徳"),
        ("惠", "恵"),
        ("眞", "真"),
        ("龍", "竜"),
        ("亞", "亜"),
        ("冝", "宜"),
        ("莵", "菟"),
        ("麸", "麩"),
        ("巿", "市"),
    ],
)
def test_variants_common_in_names_fold_to_the_standard_form(variant, standard):
    assert fold_variants(variant) == standard


def test_whole_names_fold_and_everything_else_stays():
    assert fold_variants("髙﨑 眞由美") == "高崎 真由美"
    assert fold_variants("渡邉　ユウコ、Yamada 1-2") == "渡辺　ユウコ、Yamada 1-2"


def test_variation_selectors_are_dropped():
    assert fold_variants("葛\U000e0100飾") == "葛飾"
    assert fold_variants("辻\ufe00") == "辻"
    assert drop_variation_selectors("髙\U000e0101") == "髙"


def test_the_table_maps_single_characters_and_stays_small():
    assert 400 < len(TABLE_LINES) < 3000
    assert len(TABLE) == len(TABLE_LINES)
    assert all(len(variant) == 1 and len(standard) == 1 for variant, standard in TABLE.items())


def test_no_standard_form_is_itself_folded_again():
    assert not set(TABLE.values()) & set(TABLE)


@given(st.text(alphabet=st.sampled_from(sorted(TABLE) + sorted(TABLE.values()) + list("あア A1"))))
def test_folding_twice_changes_nothing_more(text):
    assert fold_variants(fold_variants(text)) == fold_variants(text)


@given(
    st.text(
        alphabet=st.characters(codec="ascii")
        | st.characters(min_codepoint=0x3041, max_codepoint=0x30FF)
    )
)
def test_text_without_kanji_is_left_alone(text):
    assert fold_variants(text) == text
