"""Fail the test session when any log line carries a token or a secret.

Activate it for the whole suite with one line in tests/conftest.py:

    from tests.security.log_guard import secret_log_guard, secret_log_guard_test  # noqa: F401

(or ad hoc: `pytest -p tests.security.log_guard`). A handler on the root logger sees every record
that reaches the configured level for the whole session and checks its formatted text (message,
arguments and traceback) against:

* the client secret, the webhook key and the Fernet keys from settings;
* anything shaped like a JWT (`eyJ….….…`, which every Xero access token is) or a `Bearer …` header;
* every access and refresh token the sandbox issued during the test (read from its state when the
  test ends, before the next test resets it), so opaque refresh tokens are caught too.

Records from the sandbox itself (`xero_sandbox.*`, which plays Xero and is not BMS) are ignored.
At the end of the session the guard fails with the test, the logger and a masked excerpt.
"""

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
BEARER = re.compile(r"Bearer\s+[\w\-.~+/]+=*", re.IGNORECASE)
IGNORED_LOGGERS = ("xero_sandbox",)
# Shorter values (an empty secret, "x") would match everywhere and prove nothing.
MIN_SECRET_LENGTH = 8


def _mask(value: str) -> str:
    return value[:4] + "…" + f"({len(value)} chars)"


def settings_secrets() -> dict[str, str]:
    """The secrets BMS is configured with, by name."""
    from django.conf import settings  # noqa: PLC0415 - read when the session starts

    found = {
        "XERO_CLIENT_SECRET": settings.XERO_CLIENT_SECRET,
        "XERO_WEBHOOK_KEY": settings.XERO_WEBHOOK_KEY,
        "SECRET_KEY": settings.SECRET_KEY,
    }
    for index, key in enumerate(getattr(settings, "XERO_TOKEN_ENCRYPTION_KEYS", [])):
        found[f"XERO_TOKEN_ENCRYPTION_KEYS[{index}]"] = key
    return {name: value for name, value in found.items() if value}


class SecretLogGuard(logging.Handler):
    """A logging handler that records every line carrying a secret; `findings` lists them."""

    def __init__(self, secrets: dict[str, str] | None = None) -> None:
        super().__init__(level=logging.NOTSET)
        self.secrets = {
            value: name
            for name, value in (secrets or {}).items()
            if len(value) >= MIN_SECRET_LENGTH
        }
        self.findings: list[str] = []
        self.test_id = "(outside a test)"
        self._lines: list[tuple[str, str]] = []  # this test's lines, for tokens learnt at its end
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(IGNORED_LOGGERS):
            return
        try:
            text = self.format(record)
        except Exception:  # noqa: BLE001 - a badly formatted record still gets checked
            text = f"{record.msg} {record.args}"
        self._lines.append((record.name, text))
        self._check(record.name, text, self.secrets, patterns=True)

    def _check(
        self, logger_name: str, text: str, secrets: dict[str, str], *, patterns: bool
    ) -> None:
        hits: list[tuple[str, str]] = [
            (name, value) for value, name in secrets.items() if value in text
        ]
        if patterns:
            hits += [("a JWT", match) for match in JWT.findall(text)]
            hits += [("a Bearer header", match) for match in BEARER.findall(text)]
        for label, value in hits:
            self.findings.append(
                f"{self.test_id}: logger {logger_name!r} logged {label}: {_mask(value)}"
            )

    def test_started(self, test_id: str) -> None:
        self.test_id = test_id
        self._lines = []

    def test_finished(self, issued_tokens: Iterable[str] = ()) -> None:
        """Check this test's lines again for the tokens the sandbox issued during it."""
        late = {token: "a token the sandbox issued" for token in issued_tokens if token}
        late = {k: v for k, v in late.items() if len(k) >= MIN_SECRET_LENGTH}
        if late:
            for logger_name, text in self._lines:
                self._check(logger_name, text, late, patterns=False)
        self._lines = []
        self.test_id = "(outside a test)"

    def report(self) -> str:
        unique = list(dict.fromkeys(self.findings))
        return f"{len(unique)} log line(s) carry a secret or token:\n" + "\n".join(unique[:50])


def sandbox_issued_tokens(sandbox_handle: Any) -> list[str]:
    data = sandbox_handle.state.data
    return [*data.get("access_tokens", {}), *data.get("refresh_tokens", {})]


@pytest.fixture(scope="session", autouse=True)
def secret_log_guard() -> Iterator[SecretLogGuard]:
    guard = SecretLogGuard(secrets=settings_secrets())
    root = logging.getLogger()
    root.addHandler(guard)
    try:
        yield guard
    finally:
        root.removeHandler(guard)
    if guard.findings:
        pytest.fail(guard.report(), pytrace=False)


@pytest.fixture(autouse=True)
def secret_log_guard_test(
    request: pytest.FixtureRequest, secret_log_guard: SecretLogGuard
) -> Iterator[None]:
    secret_log_guard.test_started(request.node.nodeid)
    yield
    tokens: list[str] = []
    # The session's sandbox server still holds this test's tokens: the next test resets it.
    if "sandbox_server" in request.fixturenames:
        tokens = sandbox_issued_tokens(request.getfixturevalue("sandbox_server"))
    secret_log_guard.test_finished(tokens)
