from pathlib import Path

import polib
import pytest

import yobikake

LOCALE = Path(yobikake.__file__).parent / "locale"


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_compiled_catalogue_matches_its_source(lang):
    po = polib.pofile(str(LOCALE / lang / "LC_MESSAGES" / "django.po"))
    mo = polib.mofile(str(LOCALE / lang / "LC_MESSAGES" / "django.mo"))
    source = {e.msgid: e.msgstr for e in po.translated_entries()}
    compiled = {e.msgid: e.msgstr for e in mo if e.msgid}
    assert compiled == source, "run `make messages` after editing a .po file"


def test_every_japanese_string_is_translated():
    po = polib.pofile(str(LOCALE / "ja" / "LC_MESSAGES" / "django.po"))
    assert [e.msgid for e in po.untranslated_entries()] == []
    assert [e.msgid for e in po.fuzzy_entries()] == []
