from django.apps import AppConfig


class XeroIntegrationConfig(AppConfig):
    name = "xero_integration"

    def ready(self) -> None:
        from xero_integration import checks  # noqa: F401, PLC0415 - registers the system check
