"""Browser tests of the staff flows: Playwright (Python) driving Debian's Chromium, headless,
against a live BMS (pytest-django's in-process `live_server`) talking to the Xero sandbox.

Tests here are marked `browser`. Outside CI they are skipped with a clear message when
/usr/bin/chromium or the `playwright` package is missing; in CI (CI=true) that fails the run.
Nothing is downloaded: Chromium is Debian's (`apt-get install chromium`), never `playwright
install`.

Background jobs run in-process, between steps, with `admin_jobs.services.job_run` (the tests are
about what staff see and do in the browser, not about the worker). Each step's screenshot is saved
under test-artifacts/browser/<test name>/ (git-ignored).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from admin_jobs.models import BackgroundJob, JobState
from admin_jobs.services import job_run
from billing.models import AccountType, Entity, TaxRate
from tests.billing.factories import AccountFactory, AdminUserFactory, EntityFactory, TaxRateFactory
from tests.conftest import IN_CI
from tests.xero_integration import conftest as xero_conftest
from xero_integration.models import XeroConnection
from xero_integration.services import xero_accounts_pull
from xero_sandbox.seed import DEMO_REDIRECT_URIS

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # reported per test by pytest_collection_modifyitems below
    sync_playwright = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

    from tests.xero_integration.conftest import XeroEnv

# The Xero tests' fixture: BMS pointed at the sandbox, the rate limiter on Redis, the demo app.
xero_env = xero_conftest.xero_env

CHROMIUM = Path("/usr/bin/chromium")
# The machine's closed network refuses Chromium's background connections (updates, sync, field
# trials); without these flags it keeps retrying them and slows every page down.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts" / "browser"
PASSWORD = "correct horse battery staple"  # tests.billing.factories.UserFactory's


def pytest_configure(config: pytest.Config) -> None:
    # Also belongs in pyproject.toml's markers list; registering it here keeps --strict-markers
    # happy until it is.
    config.addinivalue_line(
        "markers", "browser: drives Chromium with Playwright (skipped outside CI when absent)"
    )


def _browser_missing() -> str | None:
    if sync_playwright is None:
        return "the playwright package is not installed (pip install 'playwright>=1.50')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium; never `playwright install`)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    browser_items = [item for item in items if "browser" in item.keywords]
    if not browser_items:
        return
    missing = _browser_missing()
    if missing is None:
        return
    if IN_CI:
        raise pytest.UsageError(f"CI=true but the browser tests cannot run: {missing}.")
    for item in browser_items:
        item.add_marker(pytest.mark.skip(reason=f"needs a browser: {missing} (skipped outside CI)"))


# --- The browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium(django_db_setup: None) -> Iterator[Browser]:
    """One Chromium per test module. Playwright's sync API keeps an asyncio loop running on this
    thread while it is started, which Django's async-safety check takes for async code calling the
    ORM (factories, job_run, the live server's setup): allow it, for this module only. The test
    database is created first, and the browser is gone before the next module's tests."""
    assert sync_playwright is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield browser
            finally:
                browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-NZ")
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        ctx.close()


class Shots:
    """Numbered full-page screenshots of one test: test-artifacts/browser/<test>/NN-<name>.png."""

    def __init__(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder = folder
        self.count = 0

    def __call__(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shots:
    return Shots(ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name))


@pytest.fixture
def page(context: BrowserContext, shot: Shots, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A tab; when the test fails, every open tab is saved as a last screenshot."""
    yield context.new_page()
    report = request.node.stash.get(CALL_REPORT, None)
    if report is not None and report.failed:
        for open_page in context.pages:
            shot(open_page, "at-failure")


CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report


# --- BMS on a live server, pointed at the sandbox --------------------------------------------


def run_jobs() -> list[BackgroundJob]:
    """Run every due job in-process, as a worker would, until none is left; returns them."""
    ran: dict[int, None] = {}
    for _ in range(30):
        due = list(BackgroundJob.objects.filter(state=JobState.QUEUED).values_list("pk", flat=True))
        if not due:
            break
        for job_id in due:
            job_run(job_id=job_id)
            ran[job_id] = None
    return list(BackgroundJob.objects.filter(pk__in=ran).order_by("pk"))


@dataclass
class Bms:
    url: str
    xero_env: XeroEnv
    admin_username: str
    entities: dict[str, Entity] = field(default_factory=dict)

    @property
    def sandbox_url(self) -> str:
        return self.xero_env.sandbox.url

    def at(self, path: str) -> str:
        return self.url + path

    def sign_in(self, page: Page, username: str | None = None) -> None:
        page.goto(self.at(reverse("login")))
        page.get_by_label("Username").fill(username or self.admin_username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Sign out").wait_for()

    def connect(self, entity: Entity, tenant_ids: list[str]) -> XeroConnection:
        """Connect without a browser (the browser flow is test_connect_entity_through_consent):
        an admin's Django test client starts the sign-in, the sandbox's consent form is posted,
        and the client follows the callback to the live server."""
        client = Client()
        client.login(username=self.admin_username, password=PASSWORD)
        start = client.post(reverse("xero_integration:connect", args=[entity.pk]))
        assert start.status_code == 302, start.content[:300]
        callback = self.xero_env.consent(start["Location"], tenant_ids=tenant_ids)
        parts = urlsplit(callback)
        assert "code" in parse_qs(parts.query), callback
        done = client.get(parts.path, parse_qs(parts.query))
        assert done.status_code == 302, done.content[:300]
        connection = XeroConnection.objects.get(entity_links__entity=entity)
        xero_accounts_pull(connection=connection)
        return connection


def _entity(code: str, name: str, currency: str, tz: str, prefix: str) -> Entity:
    return EntityFactory(
        code=code,
        name=name,
        base_currency=currency,
        timezone=tz,
        invoice_prefix=f"{prefix}-INV-",
        credit_note_prefix=f"{prefix}-CN-",
    )


@pytest.fixture
def bms(live_server: Any, xero_env: XeroEnv, settings: Any) -> Bms:
    """A live BMS whose Xero is the sandbox, with the sandbox's two demo organisations' entities
    (NZ and UK, not yet connected), Sales 200 and GST accounts on NZ, and an admin user."""
    callback = f"{live_server.url}/xero/callback/"
    settings.XERO_REDIRECT_URI = callback
    xero_env.sandbox.configure_app(redirect_uris=[*DEMO_REDIRECT_URIS, callback])
    ui = f"{xero_env.sandbox.url}/__sandbox__/ui/{{tenant_id}}"
    settings.XERO_CONTACT_URL_TEMPLATE = ui + "/contacts/{contact_id}"
    settings.XERO_INVOICE_URL_TEMPLATE = ui + "/invoices/{invoice_id}"
    admin = AdminUserFactory()
    nz = _entity("NZ", "Kiwi Coffee Roasters Ltd", "NZD", "Pacific/Auckland", "NZ")
    uk = _entity("UK", "Kiwi Coffee Roasters UK Ltd", "GBP", "Europe/London", "UK")
    AccountFactory(entity=nz, code="200", name="Sales", type=AccountType.REVENUE)
    TaxRateFactory(entity=nz, name="15% GST on Income", rate=Decimal("15"), xero_tax_type="OUTPUT2")
    return Bms(
        url=live_server.url,
        xero_env=xero_env,
        admin_username=admin.username,
        entities={"NZ": nz, "UK": uk},
    )


@pytest.fixture
def nz(bms: Bms) -> Entity:
    """The NZ entity, connected to the sandbox's NZ organisation with its accounts pulled."""
    entity = bms.entities["NZ"]
    bms.connect(entity, [bms.xero_env.nz_tenant_id])
    return entity


def gst(entity: Entity) -> TaxRate:
    return TaxRate.objects.get(entity=entity, name="15% GST on Income")
