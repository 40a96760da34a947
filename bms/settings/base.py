"""Every setting lives here; local, test and production differ only by environment defaults.

The defaults serve a newcomer: SQLite (WAL, immediate transactions) and a filesystem broker that a
separate worker process can reach, so nothing but Python is needed. DATABASE_URL and
CELERY_BROKER_URL switch to PostgreSQL and Redis.
"""

from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="insecure-local-only-key-change-me")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "core",
    "billing",
    "admin_jobs",
    "xero_integration",
    "journals",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "bms.urls"
WSGI_APPLICATION = "bms.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'bms.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE takes the write lock at
    # BEGIN so two processes never deadlock upgrading a read lock; the timeout waits for it.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "billing:invoice_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-nz"
TIME_ZONE = env("BMS_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- Celery -----------------------------------------------------------------------------------
# reliability-notes.md §2.3/§2.5: late acks + reject on worker lost so a killed worker's message
# comes back; prefetch 1 so a worker never sits on messages it is not running; time limits below
# the Redis visibility timeout so a long task is never redelivered while it still runs. The job
# table is the source of truth; a message is only a wake-up, and duplicates do nothing.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {"visibility_timeout": 900}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    # kombu's filesystem transport needs its folders; web, worker and beat all share them.
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        # Otherwise kombu writes its control exchange into the current directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
CELERY_VISIBILITY_TIMEOUT = 900
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = False
# Keep a worker's database connection across tasks; closing it after every job halved
# throughput in bench/jobs_bench.py (about 40 → 91 jobs/s).
CELERY_DB_REUSE_MAX = 1000

# Every periodic schedule lives here, in UTC (per-entity local times are handled by the tasks
# themselves, which run hourly and look at each entity's own time zone).
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # https://crontab.guru/#*_*_*_*_* — re-publish due jobs whose message was lost.
    "jobs-sweep": {"task": "admin_jobs.tasks.job_sweep_task", "schedule": 30.0},
    # https://crontab.guru/#17_3_*_*_* — keep idle Xero authorisations from expiring (60 days).
    # https://crontab.guru/#5_*_*_*_* — push released invoices missing from (or stale in) Xero.
    "xero-invoices-push": {
        "task": "xero_integration.tasks.invoices_push_schedule_task",
        "schedule": crontab(minute=5),
    },
    # https://crontab.guru/#5_*_*_*_* — hourly: post cost-of-sales journals for each entity whose
    # local journal hour has passed (catches up missed nights, re-checks changed days).
    "cost-of-sales-journals": {
        "task": "journals.tasks.cost_of_sales_journals_run_task",
        "schedule": crontab(minute=5),
    },
    # https://crontab.guru/#40_4_*_*_* — daily: reconcile each Xero organisation with BMS.
    "xero-reconcile": {
        "task": "journals.tasks.xero_reconcile_schedule_task",
        "schedule": crontab(minute=40, hour=4),
    },
    # https://crontab.guru/#5_*_*_*_* — hourly: pull payments of organisations in business
    # hours whose last pull is two hours old.
    "xero-payments-pull": {
        "task": "xero_integration.tasks.payments_pull_schedule_task",
        "schedule": crontab(minute=5),
    },
    "xero-tokens-refresh": {
        "task": "xero_integration.tasks.tokens_refresh_schedule_task",
        "schedule": crontab(minute=17, hour=3),
    },
}

# --- BMS ----------------------------------------------------------------------------------------
BMS_JOB_LEASE_SECONDS = env.int("BMS_JOB_LEASE_SECONDS", default=360)
BMS_JOB_RETRY_HORIZON_HOURS = env.int("BMS_JOB_RETRY_HORIZON_HOURS", default=24)
BMS_LIST_PAGE_SIZE = 50
BMS_BANNER_PROVIDERS: list[str] = [
    "admin_jobs.selectors.job_banner_for_user",
    "xero_integration.selectors.connection_banner_for_user",
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("BMS_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Xero ---------------------------------------------------------------------------------------
# The product reaches Xero (or the local sandbox, in the demo and tests) only through these.
XERO_API_BASE = env("XERO_API_BASE", default="https://api.xero.com")
XERO_IDENTITY_BASE = env("XERO_IDENTITY_BASE", default="https://identity.xero.com")
XERO_LOGIN_BASE = env("XERO_LOGIN_BASE", default="https://login.xero.com")
XERO_CLIENT_ID = env("XERO_CLIENT_ID", default="")
XERO_CLIENT_SECRET = env("XERO_CLIENT_SECRET", default="")
XERO_REDIRECT_URI = env("XERO_REDIRECT_URI", default="http://127.0.0.1:8000/xero/callback/")
XERO_WEBHOOK_KEY = env("XERO_WEBHOOK_KEY", default="")
# The minimum BMS needs (xero-api-notes.md §5); apps created after March 2026 get granular
# scopes, so this is configurable (e.g. "... accounting.invoices accounting.payments ...").
XERO_SCOPES = env.list(
    "XERO_SCOPES",
    default=[
        "openid", "profile", "email", "offline_access", "accounting.contacts",
        "accounting.settings", "accounting.transactions",
    ],
)  # fmt: skip
# Fernet keys, newest first; older keys still decrypt so keys can be rotated
# (manage.py xero_rotate_token_key re-encrypts every token with the newest).
XERO_TOKEN_ENCRYPTION_KEYS = env.list("XERO_TOKEN_ENCRYPTION_KEYS", default=[])
XERO_HTTP_TIMEOUT_SECONDS = env.float("XERO_HTTP_TIMEOUT_SECONDS", default=30.0)
XERO_RATE_LIMIT_REDIS_URL = env("XERO_RATE_LIMIT_REDIS_URL", default="")
XERO_RATE_LIMIT_PER_MINUTE = env.int("XERO_RATE_LIMIT_PER_MINUTE", default=60)
XERO_RATE_LIMIT_CONCURRENT = env.int("XERO_RATE_LIMIT_CONCURRENT", default=5)
XERO_RATE_LIMIT_APP_PER_MINUTE = env.int("XERO_RATE_LIMIT_APP_PER_MINUTE", default=10_000)
XERO_RATE_LIMIT_WINDOW_SECONDS = env.float("XERO_RATE_LIMIT_WINDOW_SECONDS", default=60.0)
# Deep links for "View in Xero". The demo points them at the sandbox's own pages.
XERO_CONTACT_URL_TEMPLATE = env(
    "XERO_CONTACT_URL_TEMPLATE", default="https://go.xero.com/Contacts/View/{contact_id}"
)
XERO_INVOICE_URL_TEMPLATE = env(
    "XERO_INVOICE_URL_TEMPLATE",
    default="https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={invoice_id}",
)
XERO_JOURNAL_URL_TEMPLATE = env(
    "XERO_JOURNAL_URL_TEMPLATE",
    default="https://go.xero.com/Journal/View.aspx?invoiceID={journal_id}",
)
