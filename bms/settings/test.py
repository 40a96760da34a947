from bms.settings.base import *  # noqa: F403
from bms.settings.base import BASE_DIR

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests never publish to a real broker unless a test starts one on purpose.
CELERY_BROKER_URL = "memory://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
STATIC_ROOT = BASE_DIR / "var" / "test-static"
