"""Model events, the way django-rest-hooks users know them.

``RESTHOOKS["MODEL_EVENTS"]`` maps an event to ``"app_label.Model.action"``:

- ``created``: a ``post_save`` that created the row;
- ``updated``: a ``post_save`` of an existing row;
- ``deleted``: a ``post_delete``;
- any other action (``"crm.Kase.closed"``): sent by your code with :data:`hook_event`.

``MODEL_OWNER`` (``instance -> owner``, or ``None`` to send nothing) says whose hooks get
it, and ``SERIALIZER`` (``(instance, event) -> payload``) what they get; without it, an
instance's own ``serialize_hook(event)`` method, else its fields with ``id``. Every model
event goes through :func:`resthooks.contrib.django.emit`, so it joins the transaction of the
save and is sent only if that commits.

:data:`raw_hook_event` emits any event with a payload of your own.
"""

from __future__ import annotations

import json
from typing import Any

from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal

from . import conf

__all__ = ["connect", "hook_event", "raw_hook_event", "serialize"]

#: ``hook_event.send(sender=Model, instance=obj, action="closed")`` emits the event
#: ``MODEL_EVENTS`` maps to ``"app_label.Model.closed"`` (nothing if none does).
hook_event = Signal()

#: ``raw_hook_event.send(sender=None, event="party/created", payload={...}, owner="acme")``
#: emits ``event`` with that payload, as :func:`~resthooks.contrib.django.emit` does.
raw_hook_event = Signal()


def serialize(instance: Any, event: str) -> object:
    """The default payload of a model event: ``instance.serialize_hook(event)`` if the model
    has that method, else ``{"id": pk, **fields}`` as Django's serializers give them."""
    method = getattr(instance, "serialize_hook", None)
    if callable(method):
        return method(event)
    (document,) = serializers.serialize("python", [instance])
    data = {"id": document["pk"], **document["fields"]}
    # Dates, decimals, UUIDs...: as Django's JSON encoder writes them.
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _fire(instance: Any, action: str, using: str | None) -> None:
    settings = conf.load()
    if not settings.model_events:
        return
    label = instance._meta.label
    for event, (model, wanted) in settings.model_events.items():
        if model != label or wanted != action:
            continue
        owner = settings.model_owner(instance) if settings.model_owner is not None else None
        if owner is None:
            continue
        payload = (
            settings.serializer(instance, event)
            if settings.serializer is not None
            else serialize(instance, event)
        )
        from ._store import emit  # noqa: PLC0415 - the store opens on first use

        emit(event, payload, owner=str(owner), using=using)


def _on_save(sender: Any, instance: Any, created: bool, raw: bool = False, **kw: Any) -> None:
    if raw:  # loaddata: fixtures are not events
        return
    _fire(instance, "created" if created else "updated", kw.get("using"))


def _on_delete(sender: Any, instance: Any, **kw: Any) -> None:
    _fire(instance, "deleted", kw.get("using"))


def _on_hook_event(sender: Any, instance: Any, action: str, **kw: Any) -> None:
    _fire(instance, action, kw.get("using"))


def _on_raw_hook_event(sender: Any, event: str, payload: object, owner: str, **kw: Any) -> None:
    from ._store import emit  # noqa: PLC0415

    emit(event, payload, owner=owner, using=kw.get("using"))


def connect() -> None:
    """Connect the receivers (the app's ``ready`` does it; calling it twice is harmless)."""
    post_save.connect(_on_save, dispatch_uid="resthooks-post-save")
    post_delete.connect(_on_delete, dispatch_uid="resthooks-post-delete")
    hook_event.connect(_on_hook_event, dispatch_uid="resthooks-hook-event")
    raw_hook_event.connect(_on_raw_hook_event, dispatch_uid="resthooks-raw-hook-event")
