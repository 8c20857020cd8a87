from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The site itself: settings, URLs, the ASGI entry point, root views and the operator
    commands (serve, gencert, backup, restore, key rotation)."""

    name = "project"
    verbose_name = "Server"

    def ready(self):
        # Connects the sign-in counters to their signals in every process, not only in
        # those whose middleware happens to import the metrics module.
        from core import metrics  # noqa: F401
