import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DJANGO_SECRET_KEY must be set to a random value of at least 50 characters"),
        ({"DJANGO_SECRET_KEY": "short"}, "DJANGO_SECRET_KEY must be set"),
        (
            {"DJANGO_SECRET_KEY": secrets.token_urlsafe(64)},
            "DJANGO_ALLOWED_HOSTS must list the host names BMS is served on.",
        ),
    ],
)
def test_production_settings_refuse_to_start_without_secret_key_and_hosts(env, message):
    result = _manage("check", env={"DJANGO_SETTINGS_MODULE": "bms.settings.production", **env})
    assert result.returncode != 0
    assert message in result.stderr


def test_check_deploy_reports_nothing_on_production_settings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DJANGO_SETTINGS_MODULE": "bms.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_ALLOWED_HOSTS": "bms.example.com",
            # Whatever database the check finds, Xero's own configuration check is satisfied.
            "XERO_CLIENT_ID": "ci",
            "XERO_CLIENT_SECRET": "ci",
            "XERO_TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        },
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_celery_is_json_only_with_late_acks_and_limits_below_visibility_timeout():
    from django.conf import settings

    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    assert settings.CELERY_TASK_SERIALIZER == "json"
    assert settings.CELERY_TASK_ACKS_LATE is True
    assert settings.CELERY_TASK_REJECT_ON_WORKER_LOST is True
    assert settings.CELERY_WORKER_PREFETCH_MULTIPLIER == 1
    assert (
        settings.CELERY_TASK_SOFT_TIME_LIMIT
        < settings.CELERY_TASK_TIME_LIMIT
        < settings.CELERY_VISIBILITY_TIMEOUT
    )
    assert settings.CELERY_TIMEZONE == "UTC"
