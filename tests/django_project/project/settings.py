"""Settings of the test CRM: a Django project as its users write one.

The environment picks the database the tests run it on:

- ``CRM_DATABASE``: a SQLite file (default: ``db.sqlite3`` beside this project), or
- ``CRM_PG_HOST``, ``CRM_PG_PORT``, ``CRM_PG_NAME``: the PostgreSQL server the tests start;
- ``CRM_STORE_ELSEWHERE``: a SQLite file for a store outside the project's database.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "resthooks.contrib.django",
    "crm",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = "project.wsgi.application"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if os.environ.get("CRM_PG_HOST"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["CRM_PG_HOST"],
            "PORT": os.environ["CRM_PG_PORT"],
            "USER": "postgres",
            "NAME": os.environ.get("CRM_PG_NAME", "postgres"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("CRM_DATABASE", BASE_DIR / "db.sqlite3"),
        }
    }

# A second database the store cannot live in (its checks name it); no test touches it.
DATABASES["legacy"] = {"ENGINE": "django.db.backends.dummy"}

RESTHOOKS = {
    "OWNER_RESOLVER": "crm.hooks.account_of",
    "MODEL_EVENTS": {
        "party/created": "crm.Party.created",
        "party/updated": "crm.Party.updated",
        "party/deleted": "crm.Party.deleted",
        "kase/closed": "crm.Kase.closed",
    },
    "MODEL_OWNER": "crm.hooks.owner_of",
    # The receivers of the tests listen on loopback, which the default policy refuses.
    "ALLOW_NETWORKS": ["127.0.0.0/8"],
    "TIMEOUTS": {"CONNECT": 2, "TOTAL": 5},
    "WORKER": {"WORKERS": 2, "POLL_INTERVAL": 0.2},
}
if os.environ.get("CRM_STORE_ELSEWHERE"):
    RESTHOOKS["STORE"] = "crm.hooks.store_elsewhere"
