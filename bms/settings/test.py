from bms.settings.base import *  # noqa: F403
from bms.settings.base import BASE_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests never publish to a real broker unless a test starts one on purpose.
CELERY_BROKER_URL = "memory://"
CELERY_BROKER_TRANSPORT_OPTIONS = {}
STATIC_ROOT = BASE_DIR / "var" / "test-static"

XERO_TOKEN_ENCRYPTION_KEYS = [
    "EiFeYvXJ84MLub-wjc6HTkNgdOnzy_h5IvC7RJxUxdY=",
    "7mXZWlRRkGhuvScoTa6fYTlQsMd2VSvz_shTMLCOk5I=",
]
XERO_CLIENT_ID = "BMS-DEMO-CLIENT"
XERO_CLIENT_SECRET = "bms-demo-secret"
XERO_WEBHOOK_KEY = "bms-demo-webhook-key"
XERO_REDIRECT_URI = "http://testserver/xero/callback/"
XERO_HTTP_TIMEOUT_SECONDS = 5.0
