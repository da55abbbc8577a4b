from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp import normalize

kana = st.text(alphabet=st.characters(min_codepoint=0x3041, max_codepoint=0x3096), min_size=1)


def test_kana_in_any_width_or_script_gives_one_key():
    assert normalize.kana_key("ﾔﾏﾀﾞ ﾀﾛｳ") == "ヤマダタロウ"
    assert normalize.kana_key("やまだ　たろう") == "ヤマダタロウ"
    assert normalize.kana_key(" ヤマダ タロウ ") == "ヤマダタロウ"


@given(kana)
def test_hiragana_and_its_katakana_share_a_key(text):
    import jaconv

    assert normalize.kana_key(text) == normalize.kana_key(jaconv.hira2kata(text))


def test_names_lose_their_spaces_and_variation_selectors():
    assert normalize.name_key("山田　太郎") == normalize.name_key("山田太郎") == "山田太郎"
    assert normalize.name_key("葛\U000e0100城") == "葛城"


def test_phone_keys_are_the_digits_of_a_japanese_number():
    assert normalize.phone_key("０５８－０００－１２３４") == "0580001234"
    assert normalize.phone_key("090 0123 4567") == "09001234567"
    assert normalize.phone_key("+81 90-0123-4567") == "09001234567"
    assert normalize.phone_key("123") == ""
    assert normalize.phone_key("なし") == ""


def test_addresses_fold_width_and_dashes():
    assert normalize.address_key("岐阜市本町１－２－３") == "岐阜市本町1-2-3"
    assert normalize.address_key("岐阜市本町 1ー2ー3") == "岐阜市本町1-2-3"


def test_insured_numbers_lose_dashes_and_spaces():
    assert normalize.insured_number_key("岐０１－ 0000012") == "岐010000012"


def test_birth_dates_are_iso():
    assert normalize.birth_key(date(1970, 3, 2)) == "1970-03-02"
