"""Collection rules for the whole repository (pytest's rootdir conftest)."""

from __future__ import annotations

import importlib.util

# The PostgreSQL store needs the optional `postgres` extra; without psycopg its module cannot
# be imported for its doctests. Its tests under tests/postgres/ say so (and fail under CI).
collect_ignore = [] if importlib.util.find_spec("psycopg") else ["src/resthooks/stores/postgres.py"]

# Django imports the Django app's models when its apps load, with the settings; a doctest
# session imports modules without either (the module has no doctest).
collect_ignore.append("src/resthooks/contrib/django/models.py")
