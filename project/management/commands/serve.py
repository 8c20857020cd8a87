import asyncio
import ipaddress
import sys

from channels.routing import get_default_application
from daphne.access import AccessLogGenerator
from daphne.server import Server
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core import crypto


def escape_endpoint_value(value: str) -> str:
    """Escape a value for a Twisted endpoint description, where ':' and '\\' are special."""
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def display_host(bind: str) -> str:
    try:
        address = ipaddress.ip_address(bind)
    except ValueError:
        return bind
    if address.is_unspecified:
        return "localhost"
    return f"[{address}]" if address.version == 6 else str(address)


def ensure_indexing_thread() -> None:
    from documents.indexing import ensure_indexing_thread as start

    start()


def ensure_embedded_worker_soon() -> None:
    from chat.inference.worker import ensure_embedded_worker

    ensure_embedded_worker()


class Command(BaseCommand):
    help = "Serve the site over HTTPS (daphne, TLS only: there is no plain-HTTP listener)."

    # Daphne runs its own event loop; Django's system checks still run first.
    requires_system_checks = "__all__"

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=None, help="address to listen on (default: BIND)")
        parser.add_argument("--port", type=int, default=None, help="port (default: PORT)")
        parser.add_argument(
            "--no-access-log", action="store_true", help="do not log each request to stdout"
        )

    def handle(self, *args, bind, port, no_access_log, **options):
        bind = bind or settings.BIND
        port = port or settings.PORT
        cert, key = settings.TLS_CERT, settings.TLS_KEY
        for path, what in ((cert, "certificate"), (key, "private key")):
            if not path.is_file():
                raise CommandError(
                    f"The TLS {what} {path} does not exist. Run `python manage.py gencert` "
                    "to make a local one, or set TLS_CERT and TLS_KEY to your PKI's files."
                )
        endpoint = (
            f"ssl:port={port}:interface={escape_endpoint_value(bind)}"
            f":privateKey={escape_endpoint_value(str(key))}"
            f":certKey={escape_endpoint_value(str(cert))}"
        )
        if settings.TLS_CHAIN:
            endpoint += f":extraCertChain={escape_endpoint_value(str(settings.TLS_CHAIN))}"

        try:
            crypto.check_keyring_opens_stored_data()
        except crypto.DecryptionError as exc:
            raise CommandError(str(exc)) from None

        url = f"https://{display_host(bind)}:{port}/"

        def ready():
            # daphne leaves autobahn's default of dropping the TCP connection on a message
            # over its size limit (1 MiB); a close frame with 1009 and the reason lets the
            # page say what happened. Read by each new connection, so set before any.
            server.ws_factory.setProtocolOptions(failByDrop=False)
            self.stdout.write(f"Serving {settings.SITE_NAME} on {url}", ending="\n")
            self._announce_local_ca(cert)
            self.stdout.flush()
            # The embedded worker starts loading the model now rather than at the first chat.
            asyncio.get_event_loop().call_soon(ensure_embedded_worker_soon)
            # Documents waiting since before a restart are indexed without waiting for a visit.
            ensure_indexing_thread()

        server = Server(
            application=get_default_application(),
            endpoints=[endpoint],
            signal_handlers=True,
            action_logger=None if no_access_log else AccessLogGenerator(sys.stdout),
            ready_callable=ready,
            # The Server header would only tell an attacker what to look up.
            server_name="",
            verbosity=options["verbosity"],
        )
        server.run()

    def _announce_local_ca(self, cert) -> None:
        """On first run with a generated certificate, say which CA a browser must trust."""
        if cert != settings.TLS_DIR / "server.crt" or not settings.TLS_CA_CERT.exists():
            return
        marker = settings.TLS_DIR / ".ca-announced"
        if marker.exists():
            return
        self.stdout.write(
            "This server's certificate comes from a local CA. To let browsers trust it, "
            f"import {settings.TLS_CA_CERT} as a trusted certificate authority "
            "(or distribute it through your device management)."
        )
        marker.touch()
