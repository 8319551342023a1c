"""The CRM's own API: creating a party stores it and emits party/created, in one transaction."""

import json

from django.db import transaction
from django.http import JsonResponse

from resthooks.contrib.django.events import hook_event

from .hooks import account_of
from .models import Kase, Party


class Refused(Exception):
    pass


def create_party(request):
    account = account_of(request)
    if account is None:
        return JsonResponse({"message": "Authentication required"}, status=401)
    try:
        data = json.loads(request.body)
        name = data["name"]
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"message": "malformed body"}, status=400)
    try:
        with transaction.atomic():
            party = Party.objects.create(account=account, name=name)  # emits party/created
            if data.get("refuse"):  # a business rule fails after the save: all rolled back
                raise Refused
    except Refused:
        return JsonResponse({"message": "refused"}, status=409)
    return JsonResponse({"id": party.pk, "name": party.name}, status=201)


def close_kase(request, kase_id):
    with transaction.atomic():
        kase = Kase.objects.select_for_update().get(pk=kase_id)
        kase.closed = True
        kase.save()
        hook_event.send(sender=Kase, instance=kase, action="closed")
    return JsonResponse({"id": kase.pk, "closed": True})
