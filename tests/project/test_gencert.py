import datetime
import io
import ipaddress
import stat

import pytest
from cryptography import x509
from django.core.management import CommandError, call_command
from django.db import DatabaseError

from audit.models import AuditEvent
from core import tls

UTC = datetime.UTC


@pytest.fixture
def tls_dir(settings, tmp_path):
    settings.TLS_DIR = tmp_path / "tls"
    settings.TLS_CERT = settings.TLS_DIR / "server.crt"
    settings.TLS_KEY = settings.TLS_DIR / "server.key"
    settings.TLS_CHAIN = None
    settings.ALLOWED_HOSTS = ["chat.corp.example", ".team.example", "10.1.2.3", "[fd00::5]", "*"]
    return settings.TLS_DIR


def _load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert):
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_the_server_certificate_names_loopback_allowed_hosts_and_extra_hosts(tls_dir):
    call_command("gencert", host=["gpu-01.corp.example", "192.168.7.7"])

    sans = _sans(_load(tls_dir / "server.crt"))
    assert set(sans.get_values_for_type(x509.DNSName)) == {
        "localhost",
        "chat.corp.example",
        "team.example",
        "*.team.example",
        "gpu-01.corp.example",
    }
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "10.1.2.3", "fd00::5", "192.168.7.7")
    }


def test_the_server_certificate_is_signed_by_the_local_ca_for_server_use_only(tls_dir):
    call_command("gencert")

    ca, server = _load(tls_dir / "ca.crt"), _load(tls_dir / "server.crt")
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    lifetime = server.not_valid_after_utc - server.not_valid_before_utc
    assert lifetime.days <= 398


def test_private_keys_are_readable_by_the_owner_only(tls_dir):
    call_command("gencert")

    assert stat.S_IMODE((tls_dir / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tls_dir / "ca.key").stat().st_mode) == 0o600


def test_it_refuses_to_overwrite_without_force(tls_dir):
    call_command("gencert")
    before = (tls_dir / "server.crt").read_bytes()

    with pytest.raises(CommandError, match=r"already exists\. Pass --force"):
        call_command("gencert")

    assert (tls_dir / "server.crt").read_bytes() == before


def test_if_missing_leaves_an_existing_certificate_alone(tls_dir):
    call_command("gencert")
    before = (tls_dir / "server.crt").read_bytes()

    call_command("gencert", if_missing=True)

    assert (tls_dir / "server.crt").read_bytes() == before


@pytest.mark.django_db
def test_force_replaces_the_server_certificate_but_keeps_the_ca_browsers_trust(tls_dir):
    call_command("gencert")
    ca_before = (tls_dir / "ca.crt").read_bytes()
    server_before = (tls_dir / "server.crt").read_bytes()

    call_command("gencert", force=True, host=["new-name.corp.example"])

    assert (tls_dir / "ca.crt").read_bytes() == ca_before
    assert (tls_dir / "server.crt").read_bytes() != server_before
    _load(tls_dir / "server.crt").verify_directly_issued_by(_load(tls_dir / "ca.crt"))


def test_a_new_ca_needs_force(tls_dir):
    with pytest.raises(CommandError, match="add --force"):
        call_command("gencert", new_ca=True)


# --- Renewal -----------------------------------------------------------------------------


def issued_days_ago(directory, days, hosts=("localhost", "chat.corp.example")):
    """A local CA and server certificate made ``days`` ago, as by an earlier gencert."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = tls.TLSFiles.in_directory(directory)
    then = datetime.datetime.now(UTC) - datetime.timedelta(days=days)
    tls.create_ca(files, "Private Chat", then)
    tls.create_server_certificate(files, list(hosts), then)
    return files


def gencert(**options) -> str:
    out = io.StringIO()
    call_command("gencert", stdout=out, **options)
    return out.getvalue()


@pytest.mark.django_db
def test_renew_issues_a_new_certificate_from_the_same_ca_for_the_same_names(tls_dir):
    files = issued_days_ago(tls_dir, 300, hosts=["localhost", "gpu-01.corp.example"])
    ca_before = files.ca_cert.read_bytes()
    old = _load(files.server_cert)

    output = gencert(renew=True)

    new = _load(files.server_cert)
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc > old.not_valid_after_utc + datetime.timedelta(days=290)
    assert files.ca_cert.read_bytes() == ca_before
    new.verify_directly_issued_by(_load(files.ca_cert))
    assert "gpu-01.corp.example" in _sans(new).get_values_for_type(x509.DNSName)
    assert "chat.corp.example" in _sans(new).get_values_for_type(x509.DNSName)
    assert stat.S_IMODE(files.server_key.stat().st_mode) == 0o600
    assert f"valid until {new.not_valid_after_utc:%Y-%m-%d}" in output
    assert "Restart every `manage.py serve` process" in output
    assert "PRIVATE KEY" not in output


@pytest.mark.django_db
def test_renew_records_the_old_and_new_serials_and_fingerprints(tls_dir):
    files = issued_days_ago(tls_dir, 10)
    old = _load(files.server_cert)

    gencert(renew=True)

    new = _load(files.server_cert)
    details = AuditEvent.objects.get(action="keys.rotated").details
    assert details["kind"] == "tls"
    assert details["step"] == "renew"
    assert details["old_serial"] == f"{old.serial_number:x}"
    assert details["new_serial"] == f"{new.serial_number:x}"
    assert details["new_fingerprint"] == tls.fingerprint(new)
    assert details["ca_fingerprint"] == tls.fingerprint(_load(files.ca_cert))


@pytest.mark.django_db
def test_a_renewal_that_cannot_be_recorded_leaves_the_old_certificate(tls_dir, monkeypatch):
    from project.management.commands import gencert as command

    files = issued_days_ago(tls_dir, 10)
    before = files.server_cert.read_bytes(), files.server_key.read_bytes()

    def database_down(*args, **kwargs):
        raise DatabaseError("no such table: audit_auditevent")

    monkeypatch.setattr(command, "record", database_down)
    with pytest.raises(CommandError, match="The certificate was not replaced"):
        gencert(renew=True)

    assert (files.server_cert.read_bytes(), files.server_key.read_bytes()) == before


def test_renew_needs_the_local_ca(tls_dir):
    files = issued_days_ago(tls_dir, 10)
    files.ca_key.unlink()

    with pytest.raises(CommandError, match=r"There is no local CA .* to renew from"):
        gencert(renew=True)


def test_renew_refuses_a_certificate_from_the_company_pki(tls_dir, settings, tmp_path):
    issued_days_ago(tls_dir, 10)
    settings.TLS_CERT = tmp_path / "pki" / "chat.crt"

    with pytest.raises(CommandError, match="renew it through your PKI"):
        gencert(renew=True)


# --- Checking a certificate and key -------------------------------------------------------


def test_check_shows_the_expiry_of_a_matching_pair(tls_dir):
    files = issued_days_ago(tls_dir, 30)
    cert = _load(files.server_cert)

    output = gencert(check=True)

    assert f"valid until: {cert.not_valid_after_utc:%Y-%m-%d}" in output
    assert "(366 days left)" in output
    assert tls.fingerprint(cert) in output
    assert "signature checked against" in output
    assert "The certificate and key match" in output
    assert "PRIVATE KEY" not in output


def test_check_refuses_a_key_that_belongs_to_another_certificate(tls_dir, tmp_path):
    files = issued_days_ago(tls_dir, 30)
    other = issued_days_ago(tmp_path / "other", 30)

    with pytest.raises(CommandError) as refusal:
        gencert(check=True, cert=files.server_cert, key=other.server_key)

    assert str(refusal.value) == (
        f"The private key {other.server_key} does not belong to the certificate "
        f"{files.server_cert}: install the key that the certificate was requested with, "
        "and replace both files together."
    )


def test_check_refuses_an_expired_certificate(tls_dir):
    issued_days_ago(tls_dir, 400)

    with pytest.raises(CommandError, match=r"expired on .*: browsers refuse it"):
        gencert(check=True)


def test_check_fails_when_fewer_days_are_left_than_asked(tls_dir):
    issued_days_ago(tls_dir, 390)

    with pytest.raises(CommandError, match=r"expires in 6 days .* fewer than --min-days 30"):
        gencert(check=True, min_days=30)
    gencert(check=True, min_days=5)


def test_check_verifies_a_company_certificate_against_its_chain(tls_dir, tmp_path):
    local = issued_days_ago(tls_dir, 30)
    company = issued_days_ago(tmp_path / "pki", 30)

    output = gencert(
        check=True, cert=company.server_cert, key=company.server_key, chain=company.ca_cert
    )
    assert "The certificate and key match" in output

    with pytest.raises(CommandError, match="was not issued by the first certificate"):
        gencert(check=True, cert=company.server_cert, key=company.server_key, chain=local.ca_cert)


def test_check_warns_about_allowed_hosts_the_certificate_does_not_name(tls_dir):
    issued_days_ago(tls_dir, 30, hosts=["localhost", "chat.corp.example"])

    output = gencert(check=True)

    assert "Warning: The certificate does not name 10.1.2.3" in output
    assert "Warning: The certificate does not name chat.corp.example" not in output


def test_check_options_need_check(tls_dir):
    with pytest.raises(CommandError, match="--min-days only go with --check"):
        gencert(min_days=3)


@pytest.mark.django_db
def test_a_new_ca_replaces_the_ca_and_the_certificate_and_is_recorded(tls_dir):
    files = issued_days_ago(tls_dir, 10)
    ca_before = _load(files.ca_cert)

    output = gencert(force=True, new_ca=True)

    ca = _load(files.ca_cert)
    assert ca.serial_number != ca_before.serial_number
    _load(files.server_cert).verify_directly_issued_by(ca)
    assert stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600
    details = AuditEvent.objects.get(action="keys.rotated").details
    assert (details["step"], details["ca_fingerprint"]) == ("new_ca", tls.fingerprint(ca))
    assert "Created local CA" in output
