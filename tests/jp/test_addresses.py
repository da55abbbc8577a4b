import pytest
from hypothesis import given
from hypothesis import strategies as st

from yobikake.jp.addresses import Address, address_key, normalize_address

KANJI_DIGITS = "〇一二三四五六七八九"
numbers = st.integers(1, 99)


def kanji_numeral(n):
    tens, ones = divmod(n, 10)
    return (
        ("" if tens < 2 else KANJI_DIGITS[tens])
        + ("十" if tens else "")
        + (KANJI_DIGITS[ones] if ones else "")
    )


def test_an_address_is_split_and_its_key_stops_at_the_block_number():
    assert normalize_address("岐阜県岐阜市本町1-2-3 メゾン本町101号室") == Address(
        prefecture="岐阜県",
        city="岐阜市",
        rest="本町1-2-3 メゾン本町101号室",
        key="岐阜県岐阜市本町1-2-3",
    )


@pytest.mark.parametrize(
    "text",
    [
        "岐阜県岐阜市本町1-2-3",
        "岐阜市本町1-2-3",
        "岐阜市本町１－２－３",
        "岐阜市本町 1ー2ー3",
        "岐阜市本町1ｰ2ｰ3",
        "岐阜市本町1−2−3",
        "岐阜市本町1丁目2番3号",
        "岐阜市本町1丁目2番地3",
        "岐阜市本町1丁目2番地の3",
        "岐阜市本町1丁目2-3",
        "岐阜市本町一丁目二番三号",
        "岐阜市本町一丁目2番地の3",
        "岐阜市本町1丁目 2番 3号",
        "岐阜県 岐阜市 本町 1-2-3",
        "〒500-8070 岐阜県岐阜市本町1-2-3",
        "岐阜市本町1-2-3 メゾン本町101号室",
        "岐阜市本町1-2-3メゾン本町101号室",
        "岐阜市本町1丁目2番3号 メゾン本町101",
        "岐阜市本町1-2-3　101",
        "岐阜市本町1-2-3、本町ビル5F",
    ],
)
def test_every_way_of_writing_one_home_gives_one_key(text):
    assert address_key(text) == "岐阜県岐阜市本町1-2-3"


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("岐阜市本町十二番", "本町12"),
        ("岐阜市本町二十一丁目", "本町21"),
        ("岐阜市本町三番地五", "本町3-5"),
        ("岐阜市本町一〇丁目", "本町10"),
        ("岐阜市柳津町本郷123番地", "柳津町本郷123"),
    ],
)
def test_kanji_numerals_before_block_markers_become_digits(text, rest):
    assert normalize_address(text).rest == rest


@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("千代田区一番町1-1", "一番町1-1"),
        ("仙台市青葉区二番丁1-1", "二番丁1-1"),
        ("四日市市本町1-1", "本町1-1"),
        ("札幌市中央区北1条西2丁目1-1", "北1条西2-1-1"),
    ],
)
def test_numerals_that_belong_to_a_place_name_stay(text, rest):
    assert normalize_address(text).rest == rest


def test_building_and_room_numbers_are_kept_in_rest_but_not_in_the_key():
    address = normalize_address("岐阜市本町1丁目2番3号 メゾン本町5号棟101号室")
    assert address.rest == "本町1-2-3 メゾン本町5号棟101号室"
    assert address.key == "岐阜県岐阜市本町1-2-3"


@pytest.mark.parametrize(
    ("text", "prefecture", "city"),
    [
        ("岐阜市本町1-2-3", "岐阜県", "岐阜市"),
        ("北方町北方123", "岐阜県", "本巣郡北方町"),
        ("本巣郡北方町北方123", "岐阜県", "本巣郡北方町"),
        ("札幌市中央区北1条西2丁目1-1", "北海道", "札幌市中央区"),
        ("横浜市保土ヶ谷区岩間町1-2", "神奈川県", "横浜市保土ケ谷区"),
        ("竜ヶ崎市米町1-1", "茨城県", "龍ケ崎市"),
        ("三宅村阿古123", "東京都", "三宅島三宅村"),
        ("千代田区一番町1-1", "東京都", "千代田区"),
    ],
)
def test_a_city_unique_in_japan_fills_in_its_prefecture(text, prefecture, city):
    address = normalize_address(text)
    assert (address.prefecture, address.city) == (prefecture, city)


def test_a_city_in_two_prefectures_stands_without_one_unless_the_text_says():
    assert normalize_address("府中市宮西町1-1") == Address(
        "", "府中市", "宮西町1-1", "府中市宮西町1-1"
    )
    assert normalize_address("東京都府中市宮西町1-1").prefecture == "東京都"
    assert normalize_address("広島県府中市府川町1").prefecture == "広島県"


def test_a_town_is_looked_up_only_in_the_prefecture_the_text_names():
    # 池田町 is in several prefectures; 揖斐郡池田町 is Gifu's.
    assert normalize_address("岐阜県池田町六之井1").city == "揖斐郡池田町"
    assert normalize_address("池田町六之井1").prefecture == ""


def test_an_address_without_a_known_city_keeps_its_text():
    assert normalize_address("本町1丁目2番3号") == Address("", "", "本町1-2-3", "本町1-2-3")
    assert normalize_address("岐阜県どこか町1").city == ""


def test_variant_kanji_and_small_ke_fold_in_the_key_only():
    address = normalize_address("髙山市上二之町1-2")
    assert address.city == "高山市"
    assert address_key("霞ヶ関1-2") == address_key("霞ケ関1-2")
    assert address_key("岐阜市大字柳津123番地") == address_key("岐阜市柳津123")


def test_nothing_gives_an_empty_key():
    assert normalize_address("") == Address("", "", "", "")
    assert address_key("　 ") == ""


@given(numbers, numbers, numbers)
def test_block_numbers_in_hyphens_and_in_chome_ban_go_give_one_key(chome, ban, go):
    expected = f"岐阜県岐阜市本町{chome}-{ban}-{go}"
    assert address_key(f"岐阜市本町{chome}-{ban}-{go}") == expected
    assert address_key(f"岐阜市本町{chome}丁目{ban}番{go}号") == expected
    assert address_key(f"岐阜市本町{chome}丁目{ban}番地{go}") == expected
    kanji = f"岐阜市本町{kanji_numeral(chome)}丁目{kanji_numeral(ban)}番{kanji_numeral(go)}号"
    assert address_key(kanji) == expected


@given(numbers, numbers, st.text(alphabet="メゾンハイツ本町ABC0123456789号室棟階", min_size=1))
def test_whatever_building_follows_a_space_the_key_is_the_same(ban, go, building):
    assert address_key(f"岐阜市本町{ban}-{go} {building}") == address_key(f"岐阜市本町{ban}-{go}")
