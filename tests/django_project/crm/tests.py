"""The CRM's own tests, run by Django's test runner (``manage.py test``), as a user's are.

The test database is Django's (in-memory SQLite, or the PostgreSQL server of the run), each
``TestCase`` test runs in a transaction that is rolled back, and ``synchronous()`` delivers
each committed emit at once to a real receiver on loopback.
"""

import json
import os

from django.contrib.auth.models import User
from django.core import checks
from django.core.management import call_command
from django.db import connections, transaction
from django.test import TestCase as DjangoTestCase
from django.test import TransactionTestCase, override_settings

from crm.models import Kase, Party
from resthooks import Dispatcher, PayloadError, RetryPolicy
from resthooks.contrib.django import emit, get_dispatcher, reset_dispatcher
from resthooks.contrib.django.testing import synchronous
from resthooks.testing import HookReceiver, RecordingTransport

# A store outside the project's database is not rolled back with the test: a fresh one each.
ELSEWHERE = bool(os.environ.get("CRM_STORE_ELSEWHERE"))


class Isolated:
    def setUp(self):
        super().setUp()
        if ELSEWHERE:
            reset_dispatcher()


class TestCase(Isolated, DjangoTestCase):
    pass


def subscribe(client, receiver, account="acme", event="party/created", path="/crm"):
    answer = client.post(
        "/api/v2/resthooks",
        json.dumps({"restHook": {"event": event, "targetUrl": receiver.url(path)}}),
        content_type="application/json",
        headers={"X-Account": account},
    )
    assert answer.status_code == 201, answer.content
    hook = answer.json()["restHook"]
    receiver.set_secret(hook["secret"], path=path)
    return hook


class Deliveries(TestCase):
    def setUp(self):
        super().setUp()
        self.receiver = HookReceiver().start()
        self.addCleanup(self.receiver.close)
        mode = synchronous()  # (TestCase.enterContext is Python 3.11+)
        mode.__enter__()
        self.addCleanup(mode.__exit__, None, None, None)

    def commit(self):
        # A TestCase never commits: run the on_commit callbacks Django captured.
        return self.captureOnCommitCallbacks(execute=True)

    def test_a_save_in_atomic_sends_a_signed_delivery(self):
        """A Party saved in atomic() reaches the subscribed receiver, signed, once committed."""
        subscribe(self.client, self.receiver)
        with self.commit():
            with transaction.atomic():
                party = Party.objects.create(account="acme", name="Zoë")
            self.assertEqual([], self.receiver.deliveries, "nothing before the commit")
        (delivery,) = self.receiver.deliveries
        self.assertTrue(delivery.verified)
        self.assertEqual("party/created", delivery.json["event"])
        self.assertEqual(party.pk, delivery.json["payload"][0]["id"])
        self.assertEqual("Zoë", delivery.json["payload"][0]["name"])

    def test_a_rolled_back_save_sends_nothing(self):
        """A save whose atomic() block rolls back stores no delivery and sends nothing."""
        subscribe(self.client, self.receiver)
        with self.commit():
            try:
                with transaction.atomic():
                    Party.objects.create(account="acme", name="Zoë")
                    raise RuntimeError("the business rule failed")
            except RuntimeError:
                pass
        self.assertEqual([], self.receiver.deliveries)
        self.assertEqual(0, sum(get_dispatcher().stats().deliveries.values()))

    def test_the_view_stores_and_emits_in_one_transaction(self):
        """The CRM's view: a refused party (409) is neither stored nor sent."""
        subscribe(self.client, self.receiver)
        with self.commit():
            refused = self.client.post(
                "/api/v2/parties",
                json.dumps({"name": "Ada", "refuse": True}),
                content_type="application/json",
                headers={"X-Account": "acme"},
            )
        self.assertEqual(409, refused.status_code)
        self.assertEqual([], self.receiver.deliveries)
        self.assertFalse(Party.objects.exists())

    def test_updates_deletes_and_custom_events(self):
        """updated, deleted and a custom hook_event action each reach their subscribers."""
        for event, path in (
            ("party/updated", "/u"),
            ("party/deleted", "/d"),
            ("kase/closed", "/k"),
        ):
            subscribe(self.client, self.receiver, event=event, path=path)
        with self.commit():
            party = Party.objects.create(account="acme", name="Zoë")
        with self.commit():
            party.name = "Zoé"
            party.save()
        with self.commit():
            kase = Kase.objects.create(account="acme", party=party)
        with self.commit():
            self.client.post(f"/api/v2/kases/{kase.pk}/close")
        with self.commit():
            party.delete()
        events = [d.json["event"] for d in self.receiver.deliveries]
        self.assertEqual(["party/updated", "kase/closed", "party/deleted"], events)
        self.assertEqual(
            {"id": kase.pk, "party": party.pk if party.pk else kase.party_id, "closed": True},
            self.receiver.payloads("kase/closed")[0],
        )
        self.assertTrue(all(d.verified for d in self.receiver.deliveries))

    def test_other_accounts_get_nothing(self):
        """A party of one account is not sent to another account's hooks."""
        subscribe(self.client, self.receiver, account="globex")
        with self.commit():
            Party.objects.create(account="acme", name="Zoë")
        self.assertEqual([], self.receiver.deliveries)


class Autocommit(Isolated, TransactionTestCase):
    def test_emit_outside_a_transaction_is_sent_at_once(self):
        """emit() in autocommit mode stores and (in synchronous mode) sends right away."""
        with HookReceiver() as receiver, synchronous():
            subscribe(self.client, receiver)
            emit("party/created", {"id": 7}, owner="acme")
            self.assertEqual([{"id": 7}], receiver.payloads("party/created"))
            keyed = emit("party/created", {"id": 8}, owner="acme", ordering_key="party:8")
            self.assertEqual(["party:8"], sorted({d.ordering_key for d in keyed}))
            self.assertEqual([{"id": 7}, {"id": 8}], receiver.payloads("party/created"))

    def test_a_committed_save_is_sent_once_committed(self):
        """A real commit (no TestCase around it) sends the save's delivery."""
        with HookReceiver() as receiver, synchronous():
            subscribe(self.client, receiver)
            with transaction.atomic():
                Party.objects.create(account="acme", name="Zoë")
                self.assertEqual([], receiver.deliveries)
            self.assertEqual(["Zoë"], [p["name"] for p in receiver.payloads("party/created")])


class BadEmits(TestCase):
    def test_bad_emits_raise_naming_the_field_and_store_nothing(self):
        """emit() with an unknown event, a bad owner or an unknown database: ValidationError
        naming it, inside a transaction or not, and nothing is stored."""
        from resthooks import ValidationError

        for kwargs, field in (
            ({"owner": "acme", "using": "nope"}, "using"),
            ({"owner": ""}, "owner"),
            ({"owner": "a" * 300}, "owner"),
            ({"owner": "acme", "ordering_key": "party\x00"}, "ordering_key"),
            ({"owner": "acme", "ordering_key": 7}, "ordering_key"),
        ):
            with self.assertRaisesRegex(ValidationError, field):
                emit("party/created", {"id": 1}, **kwargs)
            with self.assertRaisesRegex(ValidationError, field), transaction.atomic():
                emit("party/created", {"id": 1}, **kwargs)
        with self.assertRaisesRegex(ValidationError, "event"):
            emit("party/exploded", {"id": 1}, owner="acme")
        self.assertEqual(0, sum(get_dispatcher().stats().deliveries.values()))


class SubscriptionApi(TestCase):
    def test_life_of_a_hook(self):
        """201, list, show, 204, then 404, in Capsule's shapes, with Location."""
        with HookReceiver() as receiver:
            hook = subscribe(self.client, receiver)
        listed = self.client.get("/api/v2/resthooks", headers={"X-Account": "acme"})
        self.assertEqual([hook["id"]], [h["id"] for h in listed.json()["restHooks"]])
        shown = self.client.get(f"/api/v2/resthooks/{hook['id']}", headers={"X-Account": "acme"})
        self.assertEqual(200, shown.status_code)
        other = self.client.get(f"/api/v2/resthooks/{hook['id']}", headers={"X-Account": "x"})
        self.assertEqual(404, other.status_code)
        gone = self.client.delete(f"/api/v2/resthooks/{hook['id']}", headers={"X-Account": "acme"})
        self.assertEqual((204, b""), (gone.status_code, gone.content))

    def test_the_webhooks_openapi_document(self):
        """GET api/v2/resthooks/openapi.json: the OpenAPI 3.1 document of the project's
        catalogue, behind the same authentication; not taken for a hook id."""
        answer = self.client.get("/api/v2/resthooks/openapi.json", headers={"X-Account": "acme"})
        self.assertEqual(200, answer.status_code, answer.content)
        self.assertEqual("application/json", answer["Content-Type"])
        document = answer.json()
        self.assertEqual("3.1.0", document["openapi"])
        self.assertIn("party/created", document["webhooks"])
        anonymous = self.client.get("/api/v2/resthooks/openapi.json")
        self.assertEqual(401, anonymous.status_code)

    def test_errors_are_json(self):
        """No account 401, a 300-character account 400, bad JSON 400, PUT 405: all JSON."""
        cases = [
            ("post", {}, b"{}", 401),
            ("post", {"X-Account": "a" * 300}, b"{}", 400),
            ("post", {"X-Account": "acme"}, b"{not json", 400),
            ("put", {"X-Account": "acme"}, b"{}", 405),
        ]
        for method, headers, body, status in cases:
            answer = getattr(self.client, method)(
                "/api/v2/resthooks", body, content_type="application/json", headers=headers
            )
            self.assertEqual(status, answer.status_code, answer.content)
            self.assertEqual("application/json", answer["Content-Type"])
            self.assertIn("message", answer.json())
        created = self.client.post(
            "/api/v2/resthooks",
            json.dumps({"restHook": {"event": "party/created", "targetUrl": "ftp://x"}}),
            content_type="application/json",
            headers={"X-Account": "acme"},
        )
        self.assertEqual(422, created.status_code)
        self.assertEqual("targetUrl", created.json()["errors"][0]["field"])


class Admin(TestCase):
    def setUp(self):
        super().setUp()
        self.superuser = User.objects.create_superuser("root", password="pw")
        self.staff = User.objects.create_user("staff", password="pw", is_staff=True)

    def test_pages_render_for_a_superuser_only(self):
        """Hooks, deliveries and a delivery render for a superuser; staff 403; others log in."""
        dispatcher = get_dispatcher()
        hook = dispatcher.subscribe("party/created", "http://127.0.0.1:9/h", owner="acme")
        (delivery,) = dispatcher.emit("party/created", {"id": 1}, owner="acme")
        pages = [
            "/admin/resthooks/",
            "/admin/resthooks/deliveries/",
            f"/admin/resthooks/deliveries/{delivery.id}/",
        ]
        for page in pages:
            self.assertEqual(302, self.client.get(page).status_code, page)
        self.client.force_login(self.staff)
        for page in pages:
            self.assertEqual(403, self.client.get(page).status_code, page)
        self.client.force_login(self.superuser)
        for page in pages:
            answer = self.client.get(page)
            self.assertEqual(200, answer.status_code, page)
            self.assertContains(answer, delivery.id if "deliveries" in page else hook.id)

    def test_the_admin_index_links_to_the_pages_for_superusers(self):
        """The admin index (and the app's page in the side bar) lists Hooks and Deliveries
        under "REST hooks" for a superuser; each link leads to its page. Staff see neither."""
        hook = get_dispatcher().subscribe("party/created", "http://127.0.0.1:9/h", owner="acme")
        self.client.force_login(self.superuser)
        index = self.client.get("/admin/")
        self.assertContains(index, "REST hooks")
        for link, page, shows in (
            ("/admin/resthooks/hookspage/", "/admin/resthooks/", hook.id),
            ("/admin/resthooks/deliveriespage/", "/admin/resthooks/deliveries/", "deliveries"),
        ):
            self.assertContains(index, f'href="{link}"')
            followed = self.client.get(link, follow=True)
            self.assertEqual([(page, 302)], followed.redirect_chain)
            self.assertContains(followed, shows)
        self.assertContains(self.client.get("/admin/"), "Deliveries")
        self.client.force_login(self.staff)
        index = self.client.get("/admin/")
        self.assertEqual(200, index.status_code)
        self.assertNotContains(index, "/admin/resthooks/")
        self.assertEqual(403, self.client.get("/admin/resthooks/hookspage/").status_code)

    def test_the_admin_links_need_no_migration_and_no_table(self):
        """The links' models are in the app's migrations (makemigrations finds nothing to do)
        and have no table: the store's tables are the only resthooks_* ones."""
        call_command("makemigrations", "resthooks", "--check", "--dry-run", verbosity=0)
        tables = connections["default"].introspection.table_names()
        self.assertNotIn("resthooks_admin_link_hooks", tables)
        self.assertNotIn("resthooks_admin_link_deliveries", tables)

    def test_revive_and_redeliver(self):
        """The admin's actions revive a dead hook and queue its failed delivery again."""
        dispatcher = get_dispatcher()
        hook = dispatcher.subscribe("party/created", "http://127.0.0.1:9/h", owner="acme")
        # The hook dies the way the engine kills one: an older delivery fails for good (one
        # attempt, answered 500), which cancels this one.
        failing = Dispatcher(
            dispatcher.store,
            transport=RecordingTransport(default=500),
            retry=RetryPolicy([]),
        )
        failing.emit("party/created", {"id": 0}, owner="acme")
        (delivery,) = dispatcher.emit("party/created", {"id": 1}, owner="acme")
        self.assertEqual(1, failing.deliver_due(batch_size=1).failed)
        self.assertEqual("dead", dispatcher.store.get_hook(hook.id).state.value)
        self.client.force_login(self.superuser)
        self.assertContains(self.client.get("/admin/resthooks/"), "Revive")
        answer = self.client.post(f"/admin/resthooks/hooks/{hook.id}/revive")
        self.assertEqual(302, answer.status_code)
        self.assertEqual("active", dispatcher.store.get_hook(hook.id).state.value)
        self.assertEqual("cancelled", dispatcher.store.get_delivery(delivery.id).state.value)
        self.client.post(f"/admin/resthooks/deliveries/{delivery.id}/redeliver")
        self.assertEqual("pending", dispatcher.store.get_delivery(delivery.id).state.value)
        self.client.force_login(self.staff)
        refused = self.client.post(f"/admin/resthooks/deliveries/{delivery.id}/redeliver")
        self.assertEqual(403, refused.status_code)


class SettingsChecks(TestCase):
    def test_bad_settings_are_named(self):
        """manage.py check names each bad RESTHOOKS key with its own id."""
        bad = {
            "DATABASE": "nope",
            "RETRY": [5, -1],
            "MODEL_EVENTS": {"party/created": "crm.Nope.created"},
            "BOGUS": 1,
        }
        with override_settings(RESTHOOKS=bad):
            errors = checks.run_checks(tags=["resthooks"])
        self.assertEqual(
            ["resthooks.E001", "resthooks.E002", "resthooks.E006", "resthooks.E012"],
            sorted(e.id for e in errors),
        )
        with override_settings(RESTHOOKS={"MODEL_EVENTS": {"party/x": "crm.Nope.created"}}):
            ids = [e.id for e in checks.run_checks(tags=["resthooks"])]
        self.assertIn("resthooks.E012", ids)

    def test_schemas_validation_and_the_proxy_from_settings(self):
        """EVENTS naming an EventCatalogue (its dotted path) brings its schemas,
        VALIDATE_PAYLOADS checks emits against them, PROXY sends through an egress proxy;
        each wrong one has its own id."""
        bad = {"EVENTS": "crm.hooks.NOPE", "VALIDATE_PAYLOADS": "yes", "PROXY": "https://p:1"}
        with override_settings(RESTHOOKS=bad):
            ids = sorted(e.id for e in checks.run_checks(tags=["resthooks"]))
        self.assertEqual(["resthooks.E005", "resthooks.E017", "resthooks.E018"], ids)
        with override_settings(RESTHOOKS={"VALIDATE_PAYLOADS": True}):
            ids = [e.id for e in checks.run_checks(tags=["resthooks"])]
        self.assertEqual(["resthooks.E017"], ids)
        good = {
            "EVENTS": "crm.hooks.DOCUMENTED",
            "VALIDATE_PAYLOADS": True,
            "PROXY": "http://egress:pw@127.0.0.1:3128",
        }
        with override_settings(RESTHOOKS=good):
            self.assertEqual([], checks.run_checks(tags=["resthooks"]))
            reset_dispatcher()
            self.addCleanup(reset_dispatcher)
            dispatcher = get_dispatcher()
            self.assertTrue(dispatcher.validate_payloads)
            self.assertEqual("http://***@127.0.0.1:3128", dispatcher.transport.proxy.safe)
            with self.assertRaises(PayloadError) as raised:
                dispatcher.emit("party/created", {"id": "x"}, owner="acme")
            self.assertEqual("$.payload[0].id", raised.exception.path)

    def test_a_database_the_store_cannot_live_in_is_named(self):
        """DATABASE naming a backend other than SQLite or PostgreSQL: resthooks.E015."""
        self.assertNotIn(connections["legacy"].vendor, ("sqlite", "postgresql"))
        with override_settings(RESTHOOKS={"DATABASE": "legacy"}):
            ids = [e.id for e in checks.run_checks(tags=["resthooks"])]
        self.assertEqual(["resthooks.E015"], ids)

    def test_good_settings_pass(self):
        self.assertEqual([], checks.run_checks(tags=["resthooks"]))


class Command(TestCase):
    def test_stats_on_the_projects_store(self):
        """manage.py resthooks stats reads the project's own store."""
        from io import StringIO

        get_dispatcher().subscribe("party/created", "http://127.0.0.1:9/h", owner="acme")
        out = StringIO()
        call_command("resthooks", "stats", stdout=out)
        self.assertIn("active", out.getvalue())
