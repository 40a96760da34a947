import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bms.settings.local")

app = Celery("bms")
# Every CELERY_* setting lives in bms/settings/base.py; nothing is configured here.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
