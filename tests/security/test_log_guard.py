"""The log guard really fails: each kind of secret, logged through a separate handler instance."""

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.conf import settings

from tests.security.log_guard import SecretLogGuard, settings_secrets

FAKE_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlIn0.c2lnbmF0dXJlLW5vdC1yZWFs"


@pytest.fixture
def guarded() -> Iterator[tuple[logging.Logger, SecretLogGuard]]:
    # A logger that does not propagate, so the session-wide guard never sees these lines.
    logger = logging.getLogger("tests.security.fake_leak")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    guard = SecretLogGuard(secrets=settings_secrets())
    logger.addHandler(guard)
    guard.test_started("test_log_guard")
    yield logger, guard
    logger.removeHandler(guard)
    logger.propagate = True


def test_clean_lines_pass(guarded):
    logger, guard = guarded
    logger.info("pushed invoice %s (job #%d)", "NZ-INV-0001", 12)
    logger.warning("xero webhook: signed payload is not JSON (%d bytes)", 17)
    guard.test_finished(["a-refresh-token-the-sandbox-issued"])
    assert guard.findings == []


@pytest.mark.parametrize(
    "line",
    [
        f"token refreshed: {FAKE_JWT}",
        f"headers={{'Authorization': 'Bearer {FAKE_JWT}'}}",
        "sent Authorization: Bearer opaque-token-123456",
    ],
)
def test_a_jwt_or_bearer_header_is_flagged(guarded, line):
    logger, guard = guarded
    logger.info("%s", line)
    assert guard.findings
    assert FAKE_JWT not in guard.report()  # the report masks what it found


@pytest.mark.parametrize(
    "name", ["XERO_CLIENT_SECRET", "XERO_WEBHOOK_KEY", "XERO_TOKEN_ENCRYPTION_KEYS[0]"]
)
def test_each_configured_secret_is_flagged(guarded, name):
    logger, guard = guarded
    logger.error("config dump %s", settings_secrets()[name])
    assert [f for f in guard.findings if f"logged {name}:" in f]


def test_a_secret_in_a_traceback_is_flagged(guarded):
    logger, guard = guarded
    try:
        raise ValueError(f"bad client secret {settings.XERO_CLIENT_SECRET}")
    except ValueError:
        logger.exception("token exchange failed")
    assert guard.findings


def test_an_opaque_refresh_token_the_sandbox_issued_is_flagged_when_the_test_ends(guarded):
    logger, guard = guarded
    refresh_token = "9f2c" * 16  # the sandbox's refresh tokens are 64 hex characters
    logger.info("refresh with %s", refresh_token)
    assert guard.findings == []  # not recognisable by shape alone
    guard.test_finished([refresh_token])
    assert guard.findings == [
        "test_log_guard: logger 'tests.security.fake_leak' logged a token the sandbox issued: "
        "9f2c…(64 chars)"
    ]


def test_the_session_guard_fails_a_run_that_logs_a_token(tmp_path):
    """End to end, in a separate pytest run: the session fixture fails it at the end."""
    (tmp_path / "test_leak.py").write_text(
        "import logging\n\n\n"
        "def test_leaks():\n"
        f"    logging.getLogger('bms.leaky').warning('got %s', '{FAKE_JWT}')\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bms.settings.test",
        "PYTHONPATH": str(settings.BASE_DIR),
    }
    run = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [
            sys.executable,
            "-m",
            "pytest",
            str(tmp_path),
            "-c",
            os.devnull,
            "--rootdir",
            str(tmp_path),
            "-p",
            "tests.security.log_guard",
            "-p",
            "no:cacheprovider",
            "-q",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed, 1 error" in run.stdout, run.stdout
    assert "1 log line(s) carry a secret or token" in run.stdout
    assert "test_leak.py::test_leaks: logger 'bms.leaky' logged a JWT: eyJh" in run.stdout
    # (pytest prints the captured line itself; the guard's own report shows only "eyJh…".)
