from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The append-only, hash-chained audit log."""

    name = "audit"
    verbose_name = "Audit log"

    def ready(self):
        from audit import receivers  # noqa: F401 (connects the signal receivers)
