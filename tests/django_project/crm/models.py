from django.db import models


class Party(models.Model):
    account = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)


class Kase(models.Model):
    account = models.CharField(max_length=100)
    party = models.ForeignKey(Party, on_delete=models.CASCADE)
    closed = models.BooleanField(default=False)

    def serialize_hook(self, event):
        return {"id": self.pk, "party": self.party_id, "closed": self.closed}
