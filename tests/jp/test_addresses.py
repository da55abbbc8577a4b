from dataclasses import dataclass

import pytest
from hypothesis import assume, given
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


def test_a_block_number_keeps_its_kana_and_letters_so_two_homes_keep_two_keys():
    kana = address_key("東京都町田市木曽東四丁目１４ーイ２２ ジオロニアマンション")
    letter = address_key("東京都町田市木曽東四丁目１４ーＡ２２ ジオロニアマンション")
    assert kana == "東京都町田市木曽東4-14イ22"
    assert letter == "東京都町田市木曽東4-14A22"
    assert address_key("東京都町田市木曽東四丁目一四━Ａ二二 ジオロニアマンション") == letter
    assert address_key("町田市木曽東4丁目14-A22") == letter
    assert address_key("町田市木曽東4-14A22") == letter
    assert address_key("川崎市宮前区鷺沼４丁目５－３０－Ａ") == "神奈川県川崎市宮前区鷺沼4-5-30A"


def test_a_building_named_with_a_number_is_not_read_as_one():
    address = normalize_address("川崎市川崎区駅前本町１５番５十五番館ビル")
    assert address.key == "神奈川県川崎市川崎区駅前本町15-5"
    assert address.rest == "駅前本町15-5 十五番館ビル"
    address = normalize_address("岐阜市本町1-2-3-A棟")
    assert (address.rest, address.key) == ("本町1-2-3 A棟", "岐阜県岐阜市本町1-2-3")


@pytest.mark.parametrize(
    "text",
    [
        "大阪府堺市堺区南花田口町２丁３－１０",
        "堺市堺区南花田口町二丁3-10",
        "堺市堺区南花田口町2丁目3番10号",
        "堺市堺区南花田口町二丁三番十号",
        "堺市堺区南花田口町2丁 3-10",
    ],
)
def test_chome_written_as_cho_without_me_gives_the_same_key(text):
    assert address_key(text) == "大阪府堺市堺区南花田口町2-3-10"


def test_a_cho_that_belongs_to_a_town_name_stays():
    assert normalize_address("高槻市八丁西町８番２１号").rest == "八丁西町8-21"
    assert normalize_address("仙台市青葉区二番丁1-1").rest == "二番丁1-1"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("串本町串本千二百三十四", "和歌山県東牟婁郡串本町串本1234"),
        ("岐阜市本町一丁目二-三", "岐阜市本町1-2-3"),
        ("東京都江東区豊洲 四-2-27", "東京都江東区豊洲4丁目2番27号"),
        ("岐阜市本町一丁目二番三 メゾン本町", "岐阜市本町1-2-3"),
    ],
)
def test_kanji_numerals_after_chome_and_at_the_end_are_numbers(one, other):
    assert address_key(one) == address_key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("札幌市北区北２４条西６丁目１−１", "北海道札幌市北区北二十四条西六丁目1-1"),
        ("旭川市四条通十二丁目1", "旭川市4条通12丁目1"),
        ("岩手郡雫石町第二地割10", "岩手郡雫石町第2地割10"),
    ],
)
def test_numerals_inside_a_town_name_fold_to_digits_in_the_key(one, other):
    assert address_key(one) == address_key(other)


@pytest.mark.parametrize(
    "text",
    [
        "京都市中京区河原町通四条上る米屋町384",
        "京都府京都市中京区河原町四条上ル米屋町３８４",
        "京都市中京区四条通河原町東入米屋町384",
        "京都市中京区四条通寺町西入ル米屋町384",
        "京都市中京区寺町通四条下がる米屋町384番地",
        "京都市中京区米屋町384",
    ],
)
def test_kyoto_street_directions_are_left_out_of_the_key(text):
    assert address_key(text) == "京都府京都市中京区米屋町384"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("京都府京都市下京区西中筋通北小路通上る丸屋町", "京都市下京区丸屋町"),
        ("京都市下京区忠庵町柳馬場通松原下ル（忠庵町）３１６", "京都市下京区忠庵町316"),
        ("京都市下京区柳馬場通松原下ル忠庵町316", "京都市下京区忠庵町316"),
        ("京都市上京区大猪熊町寺之内通大宮西入", "京都市上京区大猪熊町"),
    ],
)
def test_a_kyoto_town_is_found_before_after_or_beside_its_directions(one, other):
    assert address_key(one) == address_key(other)


def test_words_like_kyoto_directions_elsewhere_are_part_of_the_town():
    assert address_key("名古屋市天白区西入町1") == "愛知県名古屋市天白区西入町1"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("香川県仲多度郡まんのう町勝浦字家六２０９４番地１", "まんのう町勝浦家六2094-1"),
        ("宮城県大崎市古川大崎字東亜", "大崎市古川大崎東亞"),
        ("福島県石川郡石川町字長久保185-4", "石川郡石川町長久保185番地4"),
        ("岐阜市大字柳津字本郷123番地", "岐阜市柳津本郷123"),
    ],
)
def test_aza_written_or_not_gives_one_key(one, other):
    assert address_key(one) == address_key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("京都府宇治市莵道森本8−10", "京都府宇治市菟道森本8-10"),
        ("愛知県津島市池麸町1", "愛知県津島市池麩町1"),
        ("千葉県巿川巿巿川1丁目", "千葉県市川市市川一丁目"),
        ("冝野湾市大山1-2", "宜野湾市大山1-2"),
    ],
)
def test_variant_kanji_of_place_names_fold(one, other):
    assert address_key(one) == address_key(other)


# Generated addresses: a canonical address from its parts, then written the many ways
# lists write it. Each city is unique in Japan, so its prefecture may be left out.
CITIES = [
    ("岐阜県", "岐阜市"),
    ("東京都", "町田市"),
    ("大阪府", "堺市堺区"),
    ("北海道", "札幌市北区"),
    ("京都府", "京都市中京区"),
    ("京都府", "宇治市"),
    ("千葉県", "市川市"),
    ("沖縄県", "宜野湾市"),
]
# (大字 or town, 字 or "", numeral counted in the name or None, has 丁目). A name never
# ends in a kanji numeral: 家六二〇九四 cannot be told from 家 六二〇九四 by anyone.
TOWNS = [
    ("本町", "", None, True),
    ("木曽東", "", None, True),
    ("南花田口町", "", None, True),
    ("北{}条西", "", "条", True),
    ("東{}線", "", "線", False),
    ("第{}地割", "", "地割", False),
    ("勝浦", "長久保", None, False),
    ("柳津町", "本郷", None, False),
    ("古川大崎", "東亜", None, False),
    ("菟道森本", "", None, False),
    ("池麩町", "", None, False),
    ("米屋町", "", None, False),
]
KYOTO_DIRECTIONS = ["河原町通四条上る", "四条通河原町東入", "寺町通三条下ル", "河原町二条下ル"]
VARIANTS = str.maketrans({"菟": "莵", "麩": "麸", "宜": "冝", "市": "巿", "亜": "亞"})
WIDE = str.maketrans(
    "0123456789-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "０１２３４５６７８９－ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ",
)
BUILDINGS = [" メゾン本町 101", "　ハイツ長良203号室", " ジオロニアマンション", "、本町ビル5F"]


@dataclass(frozen=True)
class Home:
    city: int
    town: int
    town_number: int | None  # the numeral counted in the town's name (北24条西)
    chome: int | None
    numbers: tuple[int, ...]
    letter: str  # "" or the letter or kana in the block number: 14-イ22, 5-30-A
    after_letter: int | None  # the number after it, if any


@st.composite
def homes(draw):
    town = draw(st.integers(0, len(TOWNS) - 1))
    _, _, counter, has_chome = TOWNS[town]
    branches = draw(st.lists(st.integers(1, 99), max_size=1 if has_chome else 2))
    numbers = (draw(st.integers(1, 2999)), *branches)
    letter = draw(st.sampled_from(["", "", "イ", "ロ", "A", "B"]))
    return Home(
        city=draw(st.integers(0, len(CITIES) - 1)),
        town=town,
        town_number=draw(st.integers(1, 30)) if counter else None,
        chome=draw(st.integers(1, 20)) if has_chome else None,
        numbers=numbers,
        letter=letter,
        after_letter=draw(st.none() | st.integers(1, 99)) if letter else None,
    )


def kanji_number(n, positional):
    """1234 as 千二百三十四, or with `positional` as 一二三四."""
    if positional:
        return "".join(KANJI_DIGITS[int(d)] for d in str(n))
    text = ""
    for unit, char in ((1000, "千"), (100, "百"), (10, "十")):
        count, n = divmod(n, unit)
        text += (KANJI_DIGITS[count] if count > 1 else "") + char if count else ""
    return text + (KANJI_DIGITS[n] if n else "")


def canonical(home):
    """The home in digits and hyphens, with its prefecture and without 字."""
    prefecture, city = CITIES[home.city]
    head, aza, _, _ = TOWNS[home.town]
    numbers = ([home.chome] if home.chome else []) + list(home.numbers)
    block = "-".join(map(str, numbers))
    if home.letter:
        block += f"-{home.letter}" + (str(home.after_letter) if home.after_letter else "")
    return prefecture + city + head.format(home.town_number) + aza + block


@st.composite
def spellings(draw, home):
    """The home as one list or another would write it."""
    prefecture, city = CITIES[home.city]
    head, aza, counter, _ = TOWNS[home.town]
    digits = draw(st.sampled_from(["arabic", "wide", "kanji", "positional"]))
    kanji = digits in ("kanji", "positional")

    def number(n):
        return kanji_number(n, digits == "positional") if kanji else str(n)

    if counter:
        head = head.format(number(home.town_number) if draw(st.booleans()) else home.town_number)
    town = head
    if aza:
        town = draw(st.sampled_from(["", "大字"])) + head + draw(st.sampled_from(["字", ""])) + aza
    if city.startswith("京都市") and draw(st.booleans()):
        town = draw(st.sampled_from(KYOTO_DIRECTIONS)) + town

    # A letter is written after a hyphen or a dash, and 番・号 do not go with it.
    markers = not home.letter and draw(st.booleans())
    if markers:
        ban, *rest = home.numbers
        if home.chome:
            block = f"{number(ban)}番" + (f"{number(rest[0])}号" if rest else "")
        else:
            tail = "-".join(number(n) for n in rest)
            if tail:
                tail = draw(st.sampled_from(["", "の"])) + tail
            block = f"{number(ban)}番地{tail}"
    else:
        dashes = ["-", "‐", "－", "ー", "━"] + ([] if kanji or home.letter else ["の"])
        dash = draw(st.sampled_from(dashes))
        block = dash.join(number(n) for n in home.numbers)
        if home.letter:
            letter = home.letter.lower() if draw(st.booleans()) else home.letter
            hyphen = (
                dash if kanji or home.after_letter is None else draw(st.sampled_from([dash, ""]))
            )
            block += hyphen + letter + (number(home.after_letter) if home.after_letter else "")
    if home.chome:
        chome = number(home.chome)
        form = draw(st.sampled_from(["丁目", "丁", "-"] if not markers else ["丁目", "丁"]))
        block = f"{chome}{form}{block}" if form != "-" else f"{chome}-{block}"
    text = (
        draw(st.sampled_from(["", prefecture]))
        + city
        + town
        + draw(st.sampled_from(["", " "]))
        + block
        + draw(st.sampled_from(["", *BUILDINGS]))
    )
    if digits == "wide":
        text = text.translate(WIDE)
    return text.translate(VARIANTS) if draw(st.booleans()) else text


@given(st.data())
def test_one_home_written_any_way_has_one_key(data):
    home = data.draw(homes())
    key = address_key(canonical(home))
    for _ in range(4):
        text = data.draw(spellings(home))
        assert address_key(text) == key, text


@given(st.data())
def test_two_homes_have_two_keys(data):
    one, other = data.draw(homes()), data.draw(homes())
    assume(one != other)
    assert address_key(data.draw(spellings(one))) != address_key(data.draw(spellings(other)))
