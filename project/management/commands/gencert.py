import datetime
from pathlib import Path

from cryptography import x509
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, transaction

from audit.log import record
from core.tls import (
    ALWAYS_INCLUDED_HOSTS,
    TLSCheckError,
    TLSFiles,
    check_certificate,
    create_ca,
    create_server_certificate,
    fingerprint,
    hosts_of,
    install_ca,
    install_server_certificate,
    issue_ca,
    issue_server_certificate,
    load_ca,
    restore_files,
    serial,
)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Command(BaseCommand):
    help = (
        "Create a local certificate authority (once) and a server certificate signed by it, "
        "for localhost, 127.0.0.1, ::1, every host in ALLOWED_HOSTS and each --host. "
        "--renew issues a new server certificate from the same CA; --check checks that a "
        "certificate and key (TLS_CERT and TLS_KEY, or --cert and --key) belong together and "
        "shows when the certificate expires."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--host",
            action="append",
            default=[],
            metavar="NAME_OR_IP",
            help="another DNS name or IP address for the certificate (repeatable)",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace an existing server certificate (the CA is kept unless --new-ca)",
        )
        parser.add_argument(
            "--new-ca",
            action="store_true",
            help="with --force, also replace the CA: every browser must trust the new one",
        )
        parser.add_argument(
            "--if-missing",
            action="store_true",
            help="do nothing, successfully, when a server certificate already exists",
        )
        parser.add_argument(
            "--renew",
            action="store_true",
            help="issue a new server certificate and key from the existing local CA, for the "
            "names of the current one plus ALLOWED_HOSTS and --host",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="check a certificate and key and show their expiry; changes nothing",
        )
        parser.add_argument(
            "--cert", type=Path, help="with --check: the certificate (default: TLS_CERT)"
        )
        parser.add_argument("--key", type=Path, help="with --check: its key (default: TLS_KEY)")
        parser.add_argument(
            "--chain",
            type=Path,
            help="with --check: intermediate certificates (default: TLS_CHAIN, without --cert)",
        )
        parser.add_argument(
            "--min-days",
            type=int,
            default=0,
            help="with --check: fail when the certificate expires in fewer days than this",
        )

    def handle(self, *args, host, force, new_ca, if_missing, renew, check, **options):
        check_only = [name for name in ("cert", "key", "chain") if options[name] is not None]
        if options["min_days"]:
            check_only.append("min_days")
        if check_only and not check:
            names = ", ".join(f"--{name.replace('_', '-')}" for name in check_only)
            raise CommandError(f"{names} only go with --check.")
        if check:
            if force or new_ca or if_missing or renew or host:
                raise CommandError("--check changes nothing; leave out the other options.")
            self._check(options["cert"], options["key"], options["chain"], options["min_days"])
            return
        if renew:
            if force or new_ca or if_missing:
                raise CommandError(
                    "--renew keeps the CA and replaces the server certificate; "
                    "leave out --force, --new-ca and --if-missing."
                )
            self._renew(host)
            return
        if new_ca and not force:
            raise CommandError("--new-ca replaces the CA every browser trusts; add --force.")
        settings.TLS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        files = TLSFiles.in_directory(settings.TLS_DIR)
        server_exists = files.server_cert.exists() or files.server_key.exists()
        if server_exists and if_missing:
            self.stdout.write(f"Server certificate {files.server_cert} already exists; kept.")
            return
        if server_exists and not force:
            raise CommandError(
                f"{files.server_cert} already exists. Pass --force to replace it, or --renew "
                "to issue a new one for the same names "
                "(browsers that trust the local CA keep trusting the new one)."
            )
        ca_exists = files.ca_cert.exists() and files.ca_key.exists()
        # Only a complete pair is replaced as a rotation; half of one is simply overwritten.
        replacing = files.server_cert.exists() and files.server_key.exists()
        issued_at = now()
        if not replacing:
            if new_ca or not ca_exists:
                create_ca(files, settings.SITE_NAME, issued_at)
                self.stdout.write(f"Created local CA {files.ca_cert} (key {files.ca_key}).")
            cert = create_server_certificate(files, self._hosts(host), issued_at)
        else:
            # A replacement is a rotation: recorded, and undone if it cannot be recorded.
            old = self._current(files)
            new_ca_pair = (
                issue_ca(settings.SITE_NAME, issued_at) if new_ca or not ca_exists else None
            )
            ca = new_ca_pair or self._load_ca(files)
            cert, key = issue_server_certificate(ca, self._hosts(host), issued_at)
            step = "new_ca" if new_ca_pair else "replace"
            self._replace_recorded(
                files, old, step=step, ca=ca, cert=cert, key=key, new_ca=bool(new_ca_pair)
            )
            if new_ca_pair:
                self.stdout.write(f"Created local CA {files.ca_cert} (key {files.ca_key}).")
        listed = ", ".join(hosts_of(cert))
        self.stdout.write(
            self.style.SUCCESS(
                f"Created server certificate {files.server_cert} for {listed}, "
                f"valid until {cert.not_valid_after_utc:%Y-%m-%d}."
            )
        )
        self.stdout.write(
            f"Browsers trust it once {files.ca_cert} is imported as a trusted authority."
        )
        if replacing:
            self.stdout.write(self._restart_sentence())

    @staticmethod
    def _hosts(extra: list[str], current: x509.Certificate | None = None) -> list[str]:
        kept = hosts_of(current) if current is not None else []
        return [*ALWAYS_INCLUDED_HOSTS, *settings.ALLOWED_HOSTS, *kept, *extra]

    @staticmethod
    def _current(files: TLSFiles) -> tuple[x509.Certificate, bytes, bytes]:
        """The certificate in place, and the bytes of both files to put back on failure."""
        try:
            cert_pem = files.server_cert.read_bytes()
            key_pem = files.server_key.read_bytes()
            return x509.load_pem_x509_certificate(cert_pem), cert_pem, key_pem
        except (OSError, ValueError):
            raise CommandError(
                f"{files.server_cert} or {files.server_key} is missing or unreadable: "
                "delete both and run `manage.py gencert` to start afresh."
            ) from None

    @staticmethod
    def _load_ca(files: TLSFiles):
        try:
            return load_ca(files)
        except (OSError, ValueError, TypeError):
            raise CommandError(
                f"The local CA {files.ca_cert} (key {files.ca_key}) cannot be read: restore "
                "both from backup, or replace the CA with `manage.py gencert --force --new-ca` "
                "(every browser must then trust the new one)."
            ) from None

    @staticmethod
    def _restart_sentence() -> str:
        return (
            "Restart every `manage.py serve` process to use it: the server reads the "
            "certificate only when it starts."
        )

    def _renew(self, extra_hosts: list[str]) -> None:
        files = TLSFiles.in_directory(settings.TLS_DIR)
        if files.server_cert != settings.TLS_CERT:
            raise CommandError(
                f"TLS_CERT is {settings.TLS_CERT}, not a certificate of the local CA: renew it "
                "through your PKI, check the new files with `manage.py gencert --check --cert "
                "NEW.crt --key NEW.key`, put them in place and restart the server."
            )
        if not (files.ca_cert.exists() and files.ca_key.exists()):
            raise CommandError(
                f"There is no local CA in {settings.TLS_DIR} to renew from: run "
                "`manage.py gencert` to create one and a server certificate."
            )
        if not files.server_cert.exists():
            raise CommandError(
                f"There is no server certificate {files.server_cert} to renew: run "
                "`manage.py gencert` to create one."
            )
        old = self._current(files)
        ca = self._load_ca(files)
        cert, key = issue_server_certificate(ca, self._hosts(extra_hosts, old[0]), now())
        self._replace_recorded(files, old, step="renew", ca=ca, cert=cert, key=key)
        self.stdout.write(
            self.style.SUCCESS(
                f"Renewed {files.server_cert}: serial {serial(cert)} (was {serial(old[0])}), "
                f"valid until {cert.not_valid_after_utc:%Y-%m-%d} "
                f"(was {old[0].not_valid_after_utc:%Y-%m-%d}), for {', '.join(hosts_of(cert))}."
            )
        )
        self.stdout.write(
            f"Issued by the same local CA {files.ca_cert}: browsers that trust it need nothing."
        )
        self.stdout.write(self._restart_sentence())

    def _check(self, cert_path, key_path, chain_path, min_days: int) -> None:
        if chain_path is None and cert_path is None:
            chain_path = settings.TLS_CHAIN
        cert_path = cert_path or settings.TLS_CERT
        key_path = key_path or settings.TLS_KEY
        local = TLSFiles.in_directory(settings.TLS_DIR)
        # Without a chain, a certificate next to the local CA is checked against that CA.
        issuer_path = None
        if chain_path is None and cert_path.parent == settings.TLS_DIR and local.ca_cert.exists():
            issuer_path = local.ca_cert
        checked_at = now()
        try:
            report = check_certificate(
                cert_path,
                key_path,
                chain_path=chain_path,
                issuer_path=issuer_path,
                hosts=list(settings.ALLOWED_HOSTS),
                now=checked_at,
            )
        except TLSCheckError as exc:
            raise CommandError(str(exc)) from None
        cert = report.cert
        self.stdout.write(f"Certificate {cert_path}")
        self.stdout.write(f"  subject:     {cert.subject.rfc4514_string()}")
        self.stdout.write(f"  names:       {', '.join(hosts_of(cert)) or 'none'}")
        self.stdout.write(f"  issuer:      {cert.issuer.rfc4514_string()}")
        if report.issuer_checked:
            self.stdout.write(f"               (signature checked against {report.issuer_checked})")
        self.stdout.write(f"  serial:      {serial(cert)}")
        self.stdout.write(f"  SHA-256:     {fingerprint(cert)}")
        self.stdout.write(
            f"  valid until: {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC "
            f"({report.days_left} days left)"
        )
        self.stdout.write(f"  private key: {key_path} belongs to it")
        for warning in report.warnings:
            self.stdout.write(self.style.WARNING(f"Warning: {warning}"))
        if report.days_left < min_days:
            raise CommandError(
                f"The certificate {cert_path} expires in {report.days_left} days "
                f"({cert.not_valid_after_utc:%Y-%m-%d}), fewer than --min-days {min_days}: "
                "renew it (`manage.py gencert --renew`, or through your PKI)."
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"The certificate and key match and are valid for {report.days_left} more days."
            )
        )

    def _replace_recorded(self, files, old, *, step, ca, cert, key, new_ca=False) -> None:
        """Install the new certificate (and CA, with ``new_ca``) and record keys.rotated:
        both, or neither."""
        old_cert, old_cert_pem, old_key_pem = old
        old_ca = None
        if new_ca and files.ca_cert.exists() and files.ca_key.exists():
            old_ca = files.ca_cert.read_bytes(), files.ca_key.read_bytes()
        details = {
            "kind": "tls",
            "step": step,
            "old_serial": serial(old_cert),
            "old_fingerprint": fingerprint(old_cert),
            "new_serial": serial(cert),
            "new_fingerprint": fingerprint(cert),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "ca_fingerprint": fingerprint(ca[0]),
        }
        written = False
        try:
            with transaction.atomic():
                record("keys.rotated", **details)
                written = True
                if new_ca:
                    install_ca(files, *ca)
                install_server_certificate(files, cert, key)
        except (DatabaseError, OSError) as exc:
            if written:
                if old_ca is not None:
                    restore_files(files.ca_cert, old_ca[0], files.ca_key, old_ca[1])
                restore_files(files.server_cert, old_cert_pem, files.server_key, old_key_pem)
            raise CommandError(
                f"The certificate was not replaced ({exc}); the files in place are the old ones. "
                "If the audit log cannot be written, run `manage.py migrate` on a new database; "
                "then run the command again."
            ) from None
