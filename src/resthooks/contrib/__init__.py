"""Thin integrations of resthooks with web frameworks, each behind its own extra.

- :mod:`resthooks.contrib.django` (``resthooks[django]``)
- :mod:`resthooks.contrib.flask` (``resthooks[flask]``)
- :mod:`resthooks.contrib.fastapi` (``resthooks[fastapi]``)

Nothing here is imported by ``import resthooks``.
"""
