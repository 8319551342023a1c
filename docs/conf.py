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
    (r"py:class", r"(Resolver|IPAddress|IPNetwork|ssl\..*)"),
    (r"py:class", r"(ConnectionPool|psycopg_pool\..*)"),
    # The build runs without network, so the standard library has no inventory to link to.
    (
        r"py:(class|obj|exc|data|func|meth|mod)",
        r"(datetime|date|timedelta|timezone|Mapping|Sequence|Iterable|Iterator|Callable|"
        r"Any|Path|os\.PathLike|bytes|str|int|float|bool|object|None|Exception|"
        r"BaseException|ValueError|LookupError|KeyError|TypeError|Protocol|"
        r"(datetime|collections\.abc|typing|pathlib|threading|socket|random|logging|"
        r"sqlite3|types|enum|ipaddress|email|http|asyncio)\..*|secrets)",
    ),
]

html_theme = "furo"
html_title = f"resthooks {release}"
