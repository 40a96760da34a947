from django.apps import AppConfig


class AdminJobsConfig(AppConfig):
    name = "admin_jobs"
