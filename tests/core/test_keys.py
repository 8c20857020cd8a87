import json
import stat
import subprocess
import sys

import pytest

from core.keys import (
    AUDIT_HMAC_KEY_FILE,
    CHAT_KEYRING_FILE,
    SECRET_KEY_FILE,
    KeyFileError,
    ensure_keys,
    key_id,
    read_key_file,
    rotatable_key_file,
    write_key_file,
)
from tests.support.server import REPO
from tests.support.services import environ_without_profile


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_it_creates_every_key_file_readable_by_the_owner_only(tmp_path):
    created = ensure_keys(tmp_path)

    names = {path.name for path in created}
    assert names == {SECRET_KEY_FILE, CHAT_KEYRING_FILE, AUDIT_HMAC_KEY_FILE}
    for path in created:
        assert _mode(path) == 0o600
    assert _mode(tmp_path / "keys") == 0o700


def test_it_never_regenerates_a_key_that_exists(tmp_path):
    ensure_keys(tmp_path)
    before = {p.name: p.read_text() for p in (tmp_path / "keys").iterdir()}

    created_again = ensure_keys(tmp_path)

    assert created_again == []
    assert {p.name: p.read_text() for p in (tmp_path / "keys").iterdir()} == before


def test_it_only_creates_the_missing_file(tmp_path):
    ensure_keys(tmp_path)
    keyring = tmp_path / "keys" / CHAT_KEYRING_FILE
    original = keyring.read_text()
    (tmp_path / "keys" / AUDIT_HMAC_KEY_FILE).unlink()

    created = ensure_keys(tmp_path)

    assert [p.name for p in created] == [AUDIT_HMAC_KEY_FILE]
    assert keyring.read_text() == original


def test_the_generated_keys_are_different_on_each_installation(tmp_path):
    ensure_keys(tmp_path / "a")
    ensure_keys(tmp_path / "b")

    for name in (SECRET_KEY_FILE, CHAT_KEYRING_FILE, AUDIT_HMAC_KEY_FILE):
        assert (tmp_path / "a/keys" / name).read_text() != (tmp_path / "b/keys" / name).read_text()


def test_the_chat_keyring_holds_a_valid_fernet_key(tmp_path):
    from cryptography.fernet import Fernet

    ensure_keys(tmp_path)
    (key,) = read_key_file(tmp_path / "keys" / CHAT_KEYRING_FILE)

    assert Fernet(key).decrypt(Fernet(key).encrypt(b"hello")) == b"hello"


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    ensure_keys(tmp_path)
    path = tmp_path / "keys" / SECRET_KEY_FILE
    path.chmod(0o644)

    with pytest.raises(KeyFileError, match=r"can be read by other users.*chmod 600"):
        read_key_file(path)


def test_a_missing_key_file_says_how_to_create_it(tmp_path):
    with pytest.raises(KeyFileError, match=r"does not exist: run `make run`"):
        read_key_file(tmp_path / "keys" / SECRET_KEY_FILE)


def test_a_rewritten_key_file_holds_the_keys_newest_first_with_mode_0600(tmp_path):
    ensure_keys(tmp_path)
    path = tmp_path / "keys" / AUDIT_HMAC_KEY_FILE
    path.chmod(0o600)
    (old,) = read_key_file(path)
    path.write_text(f"# audit keys of chat.corp.example\n{old}\n")

    write_key_file(path, ["ab" * 32, old])

    assert read_key_file(path) == ["ab" * 32, old]
    assert path.read_text().startswith("# audit keys of chat.corp.example\n")
    assert _mode(path) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".new")] == []


def test_a_key_that_could_not_be_read_back_is_never_written(tmp_path):
    ensure_keys(tmp_path)
    path = tmp_path / "keys" / SECRET_KEY_FILE
    before = path.read_text()

    for bad in ([], [""], ["two,keys"], [" padded "]):
        with pytest.raises(KeyFileError, match="Refusing to write"):
            write_key_file(path, bad)

    assert path.read_text() == before


def test_a_key_id_names_a_key_without_revealing_it():
    assert key_id("audit", "ab" * 32) == key_id("audit", "ab" * 32)
    assert key_id("audit", "ab" * 32) != key_id("audit", "cd" * 32)
    assert key_id("audit", "ab" * 32) != key_id("chat", "ab" * 32)
    assert len(key_id("audit", "ab" * 32)) == 16
    assert "ab" * 8 not in key_id("audit", "ab" * 32)


def test_a_key_set_in_the_environment_is_not_offered_for_rotation(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAT_ENCRYPTION_KEYS", "x")

    with pytest.raises(KeyFileError, match="CHAT_ENCRYPTION_KEYS is set in the environment"):
        rotatable_key_file(tmp_path, CHAT_KEYRING_FILE)


PRINT_KEYS = """
import json
from django.conf import settings
print(json.dumps([settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS, settings.AUDIT_HMAC_KEYS]))
"""


def _settings_keys(var_dir, **env):
    environ = environ_without_profile()
    environ.update({"DJANGO_SETTINGS_MODULE": "project.settings", "VAR_DIR": str(var_dir), **env})
    result = subprocess.run(
        [sys.executable, "-c", PRINT_KEYS],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_settings_use_the_first_key_of_each_file_and_keep_the_older_ones(tmp_path):
    ensure_keys(tmp_path)
    write_key_file(tmp_path / "keys" / SECRET_KEY_FILE, ["n" * 60, "o" * 60, "p" * 60])
    write_key_file(tmp_path / "keys" / AUDIT_HMAC_KEY_FILE, ["ab" * 32, "cd" * 32])

    secret_key, fallbacks, audit_keys = _settings_keys(tmp_path)

    assert secret_key == "n" * 60
    assert fallbacks == ["o" * 60, "p" * 60]
    assert audit_keys == ["ab" * 32, "cd" * 32]


def test_settings_read_several_keys_from_the_environment_newest_first(tmp_path):
    ensure_keys(tmp_path)

    secret_key, fallbacks, audit_keys = _settings_keys(
        tmp_path, SECRET_KEY=f"{'n' * 60},{'o' * 60}", AUDIT_HMAC_KEY=f"{'ab' * 32},{'cd' * 32}"
    )

    assert (secret_key, fallbacks) == ("n" * 60, ["o" * 60])
    assert audit_keys == ["ab" * 32, "cd" * 32]
