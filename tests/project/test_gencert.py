import ipaddress
import stat

import pytest
from cryptography import x509
from django.core.management import CommandError, call_command


@pytest.fixture
def tls_dir(settings, tmp_path):
    settings.TLS_DIR = tmp_path / "tls"
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
