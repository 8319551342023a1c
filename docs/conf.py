"""Sphinx configuration."""

from importlib.metadata import version as _version

project = "resthooks"
author = "resthooks maintainers"
copyright = "2026, resthooks maintainers"
release = _version("resthooks")
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "examples"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = True
nitpick_ignore_regex = [
    # Type hints name private or third-party pieces that have no page of their own.
    (r"py:class", r"(resthooks\..*\._.*|attrs\..*|threading\.Event|urllib3\..*|_io\..*)"),
    (r"py:class", r"(Handler|AsyncHandler|Step|StoreFactory|Check|T|Connection|psycopg\..*)"),
    (r"py:class", r"(aiohttp\..*|yarl\..*)"),
    (r"py:class", r"(Resolver|IPAddress|IPNetwork|AppDispatcher|ssl\..*)"),
    (r"py:class", r"(ConnectionPool|psycopg_pool\..*)"),
    (r"py:class", r"(asyncio\..*|Executor|concurrent\.futures\..*|P|Lifespan)"),
    # Web frameworks have their own documentation, which the offline build cannot link to.
    (r"py:(class|exc|obj|func)", r"(django|flask|werkzeug|fastapi|starlette|click)\..*"),
    (r"py:class", r"(Flask|FastAPI|Blueprint|APIRouter|Request|Response)"),
    (r"py:class", r"contextlib\..*"),
    (r"py:class", r"(TracerProvider|MeterProvider|CollectorRegistry|CallbackOptions)"),
    (r"py:class", r"(opentelemetry\..*|prometheus_client\..*)"),
    # The build runs without network, so the standard library has no inventory to link to.
    (
        r"py:(class|obj|exc|data|func|meth|mod)",
        r"(datetime|date|timedelta|timezone|Mapping|Sequence|Iterable|Iterator|Callable|"
        r"Any|Path|os\.PathLike|bytes|str|int|float|bool|object|None|Exception|"
        r"BaseException|ValueError|LookupError|KeyError|TypeError|Protocol|"
        r"(datetime|collections\.abc|typing|pathlib|threading|socket|random|logging|"
        r"sqlite3|types|enum|ipaddress|email|http|asyncio|contextlib|time)\..*|secrets)",
    ),
]

html_theme = "furo"
html_title = f"resthooks {release}"


# The Django integration's modules read Django's settings when they are used; configure a
# minimal project so autodoc can import them.
try:
    import django
    from django.conf import settings as _django_settings
except ImportError:  # the docs build without the django extra leaves those pages bare
    pass
else:
    if not _django_settings.configured:
        _django_settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        )
        django.setup()
