from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp import normalize
from yobikake.jp.addresses import address_key

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


def test_names_in_variant_kanji_share_the_key_of_the_standard_form():
    assert normalize.name_key("髙﨑　眞") == normalize.name_key("高崎 真") == "高崎真"
    assert normalize.name_key("渡邉") == normalize.name_key("渡邊") == normalize.name_key("渡辺")
    assert normalize.name_key("𠮷田") == "吉田"


def test_fold_keeps_hyphens_between_digits_and_long_vowels_in_kana():
    assert normalize.fold("０５８－２１４－２９６６") == "058-214-2966"
    assert normalize.fold("058ｰ214ｰ2966") == "058-214-2966"
    assert normalize.fold("ｺｰﾋｰ") == "コーヒー"
    assert normalize.fold(" 山田　太郎 ") == "山田 太郎"


def test_phone_keys_are_the_digits_of_a_japanese_number():
    assert normalize.phone_key("０５８－０００－１２３４") == "0580001234"
    assert normalize.phone_key("090 0123 4567") == "09001234567"
    assert normalize.phone_key("+81 90-0123-4567") == "09001234567"
    assert normalize.phone_key("123") == ""
    assert normalize.phone_key("なし") == ""


def test_addresses_fold_width_and_dashes():
    assert normalize.address_key("岐阜市本町１－２－３") == "岐阜県岐阜市本町1-2-3"
    assert normalize.address_key("岐阜市本町 1ー2ー3") == "岐阜県岐阜市本町1-2-3"


def test_address_keys_are_the_address_modules_keys():
    text = "岐阜市本町一丁目2番3号 メゾン本町101"
    assert normalize.address_key(text) == address_key(text) == "岐阜県岐阜市本町1-2-3"


def test_insured_numbers_lose_dashes_and_spaces():
    assert normalize.insured_number_key("岐０１－ 0000012") == "岐010000012"
    assert normalize.insured_number_key("記号12 番号345678") == "12345678"


def test_what_is_not_an_insured_number_has_no_key():
    assert normalize.insured_number_key("=1+2") == ""
    assert normalize.insured_number_key("") == ""


def test_birth_dates_are_iso():
    assert normalize.birth_key(date(1970, 3, 2)) == "1970-03-02"


def test_display_names_keep_one_space_between_surname_and_given_name():
    assert normalize.display_name("  山田　　太郎 ") == "山田 太郎"
    assert normalize.display_name("ＹＡＭＡＤＡ　Ｔａｒｏ") == "YAMADA Taro"
    assert normalize.display_name("髙橋") == "髙橋"


def test_display_kana_is_full_width_katakana_with_one_space():
    assert normalize.display_kana("ﾔﾏﾀﾞ ﾀﾛｳ") == "ヤマダ タロウ"
    assert normalize.display_kana("やまだ　　たろう") == "ヤマダ タロウ"
    assert normalize.display_kana(" ｺｰﾉ ﾊﾟｰﾙ ") == "コーノ パール"


@given(st.lists(kana, min_size=1, max_size=3))
def test_display_kana_has_the_key_of_the_name_it_displays(parts):
    text = "　".join(parts)
    assert normalize.kana_key(normalize.display_kana(text)) == normalize.kana_key(text)
    assert normalize.display_kana(text).count(" ") == len(parts) - 1
