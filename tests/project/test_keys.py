import stat

import pytest

from project.keys import (
    AUDIT_HMAC_KEY_FILE,
    CHAT_KEYRING_FILE,
    SECRET_KEY_FILE,
    KeyFileError,
    ensure_keys,
    read_key_file,
)


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
