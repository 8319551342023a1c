"""The CRM's glue to resthooks: who owns a request, who owns a row."""

import os

from resthooks.stores import MemoryStore, SQLiteStore


def account_of(request):
    # Stand-in for real authentication: the account the API key belongs to.
    return request.headers.get("X-Account") or None


def owner_of(instance):
    return instance.account


def store_elsewhere():
    # "memory" for Django's test runner (a fresh store per test), else a SQLite file.
    path = os.environ["CRM_STORE_ELSEWHERE"]
    return MemoryStore() if path == "memory" else SQLiteStore(path)


# The catalogue with schemas that the settings tests name by its dotted path.
from resthooks import CAPSULE_EVENTS, EventCatalogue  # noqa: E402

DOCUMENTED = EventCatalogue(
    CAPSULE_EVENTS.entities,
    schemas={
        "party/created": {
            "type": "object",
            "required": ["id"],
            "properties": {"id": {"type": "integer"}},
        }
    },
)
