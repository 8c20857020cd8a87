"""A local certificate authority and server certificates, for sites without a company PKI,
and a check of any certificate and key before a server uses them.

``manage.py gencert`` is the command-line face of this module. Keys are ECDSA P-256,
written with mode 0600; the server certificate lives 397 days, the longest that browsers
accept for a leaf certificate, and the CA ten years. Files are replaced by renaming a
complete new file over the old one.
"""

import contextlib
import datetime
import ipaddress
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = datetime.timedelta(days=3650)
SERVER_LIFETIME = datetime.timedelta(days=397)
# Tolerates clocks that run a little behind on client machines.
BACKDATE = datetime.timedelta(minutes=5)

ALWAYS_INCLUDED_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TLSFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> "TLSFiles":
        return cls(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            server_cert=directory / "server.crt",
            server_key=directory / "server.key",
        )


def subject_alternative_names(hosts: list[str]) -> list[x509.GeneralName]:
    """SAN entries for host names and addresses, as Django's ALLOWED_HOSTS spells them.

    ``[::1]`` is an address, ``.example.com`` means the domain and its subdomains, and the
    catch-all ``*`` cannot go into a certificate, so it is left out.
    """
    names: list[x509.GeneralName] = []
    seen: set[str] = set()

    def add(name: x509.GeneralName, key: str) -> None:
        if key not in seen:
            seen.add(key)
            names.append(name)

    for raw in hosts:
        host = raw.strip().lower()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not host or host == "*":
            continue
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            add(x509.IPAddress(address), f"ip:{address}")
            continue
        if host.startswith("."):
            add(x509.DNSName(host[1:]), f"dns:{host[1:]}")
            add(x509.DNSName(f"*{host}"), f"dns:*{host}")
        else:
            add(x509.DNSName(host), f"dns:{host}")
    return names


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``.

    A server starting at that moment reads the old file or the new one, never half of one;
    the temporary file has mode 0600 from its creation, so a private key is never readable
    by others, not even briefly.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        if path.exists() and os.name == "posix":
            # Run as root, a renewal keeps the files readable by the server's own user.
            info = path.stat()
            with contextlib.suppress(PermissionError):
                os.fchown(fd, info.st_uid, info.st_gid)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    _replace_file(path, _key_bytes(key), 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    _replace_file(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def create_ca(files: TLSFiles, common_name: str, now: datetime.datetime) -> None:
    install_ca(files, *issue_ca(common_name, now))


def install_ca(files: TLSFiles, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    _write_key(files.ca_key, key)
    _write_cert(files.ca_cert, cert)


def load_ca(files: TLSFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    return ca_cert, ca_key


def issue_ca(
    common_name: str, now: datetime.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new CA certificate and key; nothing is written."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, common_name),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} local CA"),
        ]
    )
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def create_server_certificate(
    files: TLSFiles, hosts: list[str], now: datetime.datetime
) -> x509.Certificate:
    """Issue a server certificate from the local CA and install it with its new key."""
    cert, key = issue_server_certificate(load_ca(files), hosts, now)
    install_server_certificate(files, cert, key)
    return cert


def issue_server_certificate(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    hosts: list[str],
    now: datetime.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new key and a certificate for it signed by the CA ``ca``; nothing is written."""
    ca_cert, ca_key = ca
    sans = subject_alternative_names(hosts)
    first_dns = next((n.value for n in sans if isinstance(n, x509.DNSName)), "localhost")
    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first_dns)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def install_server_certificate(
    files: TLSFiles, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    # The key first: a server that starts in between fails to start (key and certificate do
    # not match) rather than serving a certificate whose key is gone.
    _write_key(files.server_key, key)
    _write_cert(files.server_cert, cert)


def restore_files(cert_path: Path, cert_pem: bytes, key_path: Path, key_pem: bytes) -> None:
    """Put back a certificate and key read before a replacement that had to be undone."""
    _replace_file(key_path, key_pem, 0o600)
    _replace_file(cert_path, cert_pem, 0o644)


def hosts_of(cert: x509.Certificate) -> list[str]:
    """The DNS names and addresses a certificate is for, as host strings."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name.value) for name in names if isinstance(name, x509.DNSName | x509.IPAddress)]


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint, as browsers and ``openssl x509 -fingerprint`` show it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def serial(cert: x509.Certificate) -> str:
    return f"{cert.serial_number:x}"


class TLSCheckError(Exception):
    """A certificate and key that a server cannot, or should not, use; says why."""


@dataclass(frozen=True)
class CertificateReport:
    cert: x509.Certificate
    days_left: int
    issuer_checked: str | None
    warnings: tuple[str, ...]


def _load_certificates(path: Path, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except FileNotFoundError:
        raise TLSCheckError(f"The {what} {path} does not exist.") from None
    except ValueError:
        raise TLSCheckError(
            f"The {what} {path} holds no PEM certificate (a file starting with "
            "-----BEGIN CERTIFICATE-----)."
        ) from None
    return certs


def _load_private_key(path: Path):
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TLSCheckError(f"The private key {path} does not exist.") from None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSCheckError(
            f"The private key {path} is protected by a passphrase, which the server cannot "
            "ask for: store it without one, readable by the server's user only (mode 0600)."
        ) from None
    except ValueError:
        raise TLSCheckError(f"{path} holds no PEM private key.") from None


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_certificate(
    cert_path: Path,
    key_path: Path,
    *,
    chain_path: Path | None,
    issuer_path: Path | None,
    hosts: list[str],
    now: datetime.datetime,
) -> CertificateReport:
    """Check that a certificate and key belong together, are valid now and name ``hosts``.

    ``chain_path`` (intermediate certificates sent with it) or else ``issuer_path`` (the local
    CA) must hold the certificate that issued it. Raises TLSCheckError with a sentence saying
    what is wrong; returns what is worth knowing about the certificate, with warnings.
    """
    cert = _load_certificates(cert_path, "certificate")[0]
    key = _load_private_key(key_path)
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise TLSCheckError(
            f"The private key {key_path} does not belong to the certificate {cert_path}: "
            "install the key that the certificate was requested with, and replace both files "
            "together."
        )
    if now < cert.not_valid_before_utc:
        raise TLSCheckError(
            f"The certificate {cert_path} is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: check this machine's clock."
        )
    if now > cert.not_valid_after_utc:
        raise TLSCheckError(
            f"The certificate {cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d}: "
            "browsers refuse it. Renew it (`manage.py gencert --renew`, or through your PKI)."
        )
    issuer_checked = None
    issuer_file = chain_path or issuer_path
    if issuer_file is not None:
        what = "chain file" if chain_path else "CA certificate"
        issuer = _load_certificates(issuer_file, what)[0]
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise TLSCheckError(
                f"The certificate {cert_path} was not issued by the first certificate in the "
                f"{what} {issuer_file} ({issuer.subject.rfc4514_string()}): "
                + (
                    "put the intermediate certificate that issued it first in TLS_CHAIN."
                    if chain_path
                    else "issue it from this CA (`manage.py gencert --renew`)."
                )
            ) from None
        issuer_checked = issuer.subject.rfc4514_string()
    warnings = []
    names = set(hosts_of(cert))
    for wanted in subject_alternative_names(hosts):
        if str(wanted.value) not in names:
            warnings.append(
                f"The certificate does not name {wanted.value}, which ALLOWED_HOSTS lists: "
                "browsers reaching the site by that name will refuse it."
            )
    info = key_path.stat()
    if os.name == "posix" and info.st_mode & 0o077:
        warnings.append(
            f"The private key {key_path} can be read by other users "
            f"(mode {info.st_mode & 0o777:o}): run `chmod 600 {key_path}`."
        )
    days_left = (cert.not_valid_after_utc - now).days
    return CertificateReport(cert, days_left, issuer_checked, tuple(warnings))
