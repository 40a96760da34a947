"""No Docker engine runs here, so the compose file is checked for what it names instead."""

import importlib
import re
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS_SOURCE = "\n".join(p.read_text() for p in (ROOT / "bms" / "settings").glob("*.py"))
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
IMAGE_VARIABLES = {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}


def test_compose_has_web_worker_beat_postgres_and_redis():
    assert set(COMPOSE["services"]) == {"web", "worker", "beat", "postgres", "redis"}


def test_every_command_names_something_that_exists():
    for name in ("web", "worker", "beat"):
        service = COMPOSE["services"][name]
        assert service["build"] == "."
        argv = shlex.split(service["command"])
        if argv[0] == "gunicorn":
            module, attr = argv[1].split(":")
            assert hasattr(importlib.import_module(module), attr)
        else:
            assert argv[:3] == ["celery", "-A", "bms"]
            assert argv[3] in {"worker", "beat"}
            assert hasattr(importlib.import_module("bms"), "celery_app")
    assert (ROOT / "Dockerfile").exists()
    for dependency in COMPOSE["services"]["web"]["depends_on"]:
        assert dependency in COMPOSE["services"]


def test_every_variable_is_read_by_the_settings_or_documented():
    for name in ("web", "worker", "beat"):
        for variable in COMPOSE["services"][name]["environment"]:
            assert re.search(rf"[\"']{variable}[\"']", SETTINGS_SOURCE) or variable in (
                "DJANGO_SETTINGS_MODULE",
            ), f"{name} sets {variable}, which no setting reads"
    interpolated = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    for variable in interpolated - IMAGE_VARIABLES:
        assert f"{variable}=" in ENV_EXAMPLE, f"{variable} is not documented in .env.example"
    assert "DJANGO_SETTINGS_MODULE=" in ENV_EXAMPLE
