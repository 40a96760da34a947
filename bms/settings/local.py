from bms.settings.base import *  # noqa: F403
from bms.settings.base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
