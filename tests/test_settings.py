import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from yobikake import settings as yobikake_settings


def test_secret_key_is_generated_into_home_with_owner_only_access():
    path = Path(settings.YOBIKAKE_HOME) / "secret_key"
    assert path.read_text().strip() == settings.SECRET_KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(settings.SECRET_KEY) >= 50


def test_passwords_are_hashed_with_argon2():
    assert yobikake_settings.PASSWORD_HASHERS == [
        "django.contrib.auth.hashers.Argon2PasswordHasher"
    ]


def test_japanese_first_english_second_tokyo_time():
    assert settings.LANGUAGE_CODE == "ja"
    assert [code for code, _ in settings.LANGUAGES] == ["ja", "en"]
    assert settings.TIME_ZONE == "Asia/Tokyo" and settings.USE_TZ


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("0", False), ("", True)])
def test_envbool(monkeypatch, value, expected):
    monkeypatch.setenv("X_FLAG", value)
    assert yobikake_settings.envbool("X_FLAG", True) is expected


def test_envbool_and_envint_refuse_nonsense(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured):
        yobikake_settings.envbool("X_FLAG", True)
    with pytest.raises(ImproperlyConfigured):
        yobikake_settings.envint("X_FLAG", 1)


def test_envsecret_reads_a_file_and_fails_loudly_when_it_cannot(monkeypatch, tmp_path):
    secret = tmp_path / "s"
    secret.write_text("  from-file\n")
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert yobikake_settings.envsecret("X_SECRET") == "from-file"
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured):
        yobikake_settings.envsecret("X_SECRET")


def test_two_homes_side_by_side_keep_their_own_secrets(tmp_path):
    keys = []
    for name in ("one", "two"):
        env = dict(os.environ, YOBIKAKE_HOME=str(tmp_path / name))
        env.pop("DATABASE_URL", None)
        out = subprocess.run(
            [sys.executable, "-c", "from yobikake import settings as s; print(s.SECRET_KEY)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        keys.append(out.stdout.strip())
        assert (tmp_path / name / "secret_key").exists()
    assert keys[0] != keys[1]


@pytest.mark.parametrize(
    "path",
    ["/static/yobikake/site.css", "/static/yobikake/favicon.svg", "/static/ninja/swagger-ui.css"],
)
def test_static_files_are_served_without_collectstatic(client, path):
    # Through the real middleware stack (the browser suite's live server has its own).
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] in {"text/css", "image/svg+xml"}


@pytest.mark.django_db
def test_every_model_change_has_its_migration():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
