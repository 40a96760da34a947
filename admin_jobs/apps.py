from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class AdminJobsConfig(AppConfig):
    name = "admin_jobs"
    verbose_name = "Background jobs"

    def ready(self) -> None:
        # Every app registers its job handlers in its own jobs.py; importing them here (in web and
        # worker processes alike) means the Xero apps never edit admin_jobs to add a handler.
        autodiscover_modules("jobs")
