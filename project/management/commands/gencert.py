import datetime

from cryptography import x509
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from project.tls import (
    ALWAYS_INCLUDED_HOSTS,
    TLSFiles,
    create_ca,
    create_server_certificate,
)


class Command(BaseCommand):
    help = (
        "Create a local certificate authority (once) and a server certificate signed by it, "
        "for localhost, 127.0.0.1, ::1, every host in ALLOWED_HOSTS and each --host."
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

    def handle(self, *args, host, force, new_ca, if_missing, **options):
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
                f"{files.server_cert} already exists. Pass --force to replace it "
                "(browsers that trust the local CA keep trusting the new one)."
            )
        ca_exists = files.ca_cert.exists() and files.ca_key.exists()
        now = datetime.datetime.now(datetime.UTC)
        if new_ca or not ca_exists:
            create_ca(files, settings.SITE_NAME, now)
            self.stdout.write(f"Created local CA {files.ca_cert} (key {files.ca_key}).")
        hosts = [*ALWAYS_INCLUDED_HOSTS, *settings.ALLOWED_HOSTS, *host]
        cert = create_server_certificate(files, hosts, now)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        listed = ", ".join(str(name.value) for name in names)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created server certificate {files.server_cert} for {listed}, "
                f"valid until {cert.not_valid_after_utc:%Y-%m-%d}."
            )
        )
        self.stdout.write(
            f"Browsers trust it once {files.ca_cert} is imported as a trusted authority."
        )
