from bms.settings.base import *  # noqa: F403
from bms.settings.base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)

# A fixed development key so the demo works out of the box; production must set its own.
XERO_TOKEN_ENCRYPTION_KEYS = env.list(
    "XERO_TOKEN_ENCRYPTION_KEYS", default=["YhyKPCCLyTPGP-TKQAMLjzRweZntn0fVX1T0vLMsY3A="]
)
