from django.apps import AppConfig


class XeroIntegrationConfig(AppConfig):
    name = "xero_integration"
