from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project itself: settings, network policy, TLS serving and health."""

    name = "project"
    verbose_name = "Server"

    def ready(self):
        # Connects the sign-in counters to their signals in every process, not only in
        # those whose middleware happens to import the metrics module.
        from project import metrics  # noqa: F401
