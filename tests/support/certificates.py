"""A test CA and a server certificate from it, for the tests' own TLS servers (slapd, the
OpenID Connect provider)."""

import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from core.tls import issue_ca, issue_server_certificate


def write_test_ca(directory: Path, hosts: list[str]) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for ``hosts``; returns (ca, cert, key) paths."""
    now = datetime.datetime.now(datetime.UTC)
    ca_cert, ca_key = issue_ca("Directory tests", now)
    cert, key = issue_server_certificate((ca_cert, ca_key), hosts, now)
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths[2].chmod(0o600)
    return paths
