from django.apps import AppConfig


class ProjectConfig(AppConfig):
    """The project itself: settings, network policy, TLS serving and health."""

    name = "project"
    verbose_name = "Server"
