"""PostgresStore beyond the conformance suite: the outbox, its schema, errors, wake-ups."""

# ruff: noqa: PLC0415 - psycopg is optional: imported only after the fixtures checked for it

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest
import support

from resthooks import ConfigurationError, DeliveryState, SchemaError, StoreError
from resthooks.model import Attempt, Hook, Outcome, OutcomeKind
from resthooks.testing import HookReceiver

if TYPE_CHECKING:
    from resthooks.stores.postgres import PostgresStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _hook(n: int, url: str = "https://example.com/h") -> Hook:
    return Hook(
        id=f"hook_{n}",
        owner="acme",
        event="party/created",
        target_url=f"{url}/{n}",
        created_at=T0,
        updated_at=T0,
    )


def _count(conninfo: str, schema: str, table: str) -> int:
    import psycopg
    from psycopg import sql

    with psycopg.connect(conninfo) as conn:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        row = conn.execute(query).fetchone()
        assert row is not None
        return int(row[0])


# -- the transactional outbox -----------------------------------------------------------------


def _orders_table(conninfo: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(conninfo) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {}.orders (id serial PRIMARY KEY, item text)").format(
                sql.Identifier(schema)
            )
        )


def test_rolled_back_emit_leaves_no_delivery(
    pg_store: PostgresStore, pg_conninfo: str, receiver: HookReceiver
) -> None:
    """An emit through the host's connection disappears with the host's rolled-back
    transaction: no delivery, no body, nothing sent."""
    import psycopg
    from psycopg import sql

    dispatcher = support.make_dispatcher(pg_store)
    dispatcher.subscribe("party/created", receiver.url(), owner="acme")
    _orders_table(pg_conninfo, pg_store.schema)
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {}.orders (item) VALUES ('book')").format(
                sql.Identifier(pg_store.schema)
            )
        )
        made = dispatcher.emit("party/created", {"id": 1}, owner="acme", connection=conn)
        assert len(made) == 1
        conn.rollback()
    assert pg_store.list_deliveries() == []
    assert _count(pg_conninfo, pg_store.schema, "messages") == 0
    assert _count(pg_conninfo, pg_store.schema, "orders") == 0
    assert dispatcher.deliver_due().attempts == 0
    assert len(receiver.deliveries) == 0


def test_committed_emit_is_delivered(
    pg_store: PostgresStore, pg_conninfo: str, receiver: HookReceiver
) -> None:
    """An emit through the host's connection is invisible until the host commits, then it
    is delivered to the receiver."""
    import psycopg
    from psycopg import sql

    dispatcher = support.make_dispatcher(pg_store)
    dispatcher.subscribe("party/created", receiver.url(), owner="acme")
    _orders_table(pg_conninfo, pg_store.schema)
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute(
            sql.SQL("INSERT INTO {}.orders (item) VALUES ('book')").format(
                sql.Identifier(pg_store.schema)
            )
        )
        (made,) = dispatcher.emit("party/created", {"id": 7}, owner="acme", connection=conn)
        assert pg_store.get_delivery(made.id) is None, "not visible before the commit"
        assert dispatcher.deliver_due().attempts == 0
        conn.commit()
    assert dispatcher.deliver_due().delivered == 1
    assert receiver.webhook_ids() == {made.id: 1}
    assert receiver.deliveries[0].body == b'{"event":"party/created","payload":[{"id":7}]}'
    delivered = pg_store.get_delivery(made.id)
    assert delivered is not None
    assert delivered.state is DeliveryState.DELIVERED


def test_outbox_in_an_explicit_transaction_block(pg_store: PostgresStore, pg_conninfo: str) -> None:
    """In autocommit mode, an emit inside ``conn.transaction()`` commits with the block, and
    one raising out of the block is rolled back with it."""
    import psycopg

    pg_store.add_hook(_hook(1), max_per_owner=None)
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:

        def failing_business_change() -> None:
            with conn.transaction():
                pg_store.enqueue(
                    owner="acme", event="party/created", body=b"{}", now=T0, connection=conn
                )
                raise RuntimeError("the host's business change failed")

        with pytest.raises(RuntimeError):
            failing_business_change()
        assert pg_store.list_deliveries() == []
        with conn.transaction():
            (made,) = pg_store.enqueue(
                owner="acme", event="party/created", body=b"{}", now=T0, connection=conn
            )
    assert [d.id for d in pg_store.list_deliveries()] == [made.id]


def test_outbox_refuses_what_cannot_be_transactional(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """A connection that is not psycopg's, or an autocommit one outside a transaction, is a
    ConfigurationError naming ``connection``, and nothing is stored."""
    import sqlite3

    import psycopg

    dispatcher = support.make_dispatcher(pg_store)
    dispatcher.subscribe("party/created", "https://example.com/h", owner="acme")
    other = sqlite3.connect(":memory:")
    with pytest.raises(ConfigurationError, match="connection"):
        dispatcher.emit("party/created", {"id": 1}, owner="acme", connection=other)
    other.close()
    with (
        psycopg.connect(pg_conninfo, autocommit=True) as conn,
        pytest.raises(ConfigurationError, match="connection: is in autocommit mode"),
    ):
        dispatcher.emit("party/created", {"id": 1}, owner="acme", connection=conn)
    assert pg_store.list_deliveries() == []


def test_outbox_driver_error_is_a_store_error(pg_store: PostgresStore, pg_conninfo: str) -> None:
    """An emit through a connection whose transaction already failed raises StoreError with
    the driver's error as its cause."""
    import psycopg

    pg_store.add_hook(_hook(1), max_per_owner=None)
    with psycopg.connect(pg_conninfo) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM no_such_table")
        with pytest.raises(StoreError) as caught:
            pg_store.enqueue(
                owner="acme", event="party/created", body=b"{}", now=T0, connection=conn
            )
        assert isinstance(caught.value.__cause__, psycopg.Error)


# -- schema ------------------------------------------------------------------------------------


def test_schema_option_keeps_stores_apart(pg_conninfo: str, new_schema: Callable[[], str]) -> None:
    """Two stores in two schemas (one needing quotes) share nothing, and each schema records
    its version."""
    from resthooks.stores.postgres import SCHEMA_VERSION, PostgresStore

    first_name, second_name = new_schema(), new_schema() + ' "Quoted" Schema'
    first = PostgresStore(pg_conninfo, schema=first_name)
    second = PostgresStore(pg_conninfo, schema=second_name)
    try:
        first.add_hook(_hook(1), max_per_owner=None)
        assert second.get_hook("hook_1") is None
        assert [h.id for h in first.list_hooks()] == ["hook_1"]
        for name in (first_name, second_name):
            assert _count(pg_conninfo, name, "schema_version") == 1
            assert _count(pg_conninfo, name, "hooks") == (1 if name == first_name else 0)
    finally:
        first.close()
        second.close()
        import psycopg
        from psycopg import sql

        with psycopg.connect(pg_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(second_name)))
    assert SCHEMA_VERSION == 7


def test_reopening_a_schema_keeps_its_data(pg_conninfo: str, new_schema: Callable[[], str]) -> None:
    """A second store on an existing schema migrates nothing and sees the stored hooks."""
    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    first = PostgresStore(pg_conninfo, schema=schema)
    first.add_hook(_hook(1), max_per_owner=None)
    first.close()
    again = PostgresStore(pg_conninfo, schema=schema)
    try:
        assert again.get_hook("hook_1") == _hook(1)
    finally:
        again.close()


def test_newer_schema_version_is_refused(pg_conninfo: str, new_schema: Callable[[], str]) -> None:
    """A schema written by a newer resthooks raises SchemaError and is left as it was."""
    import psycopg
    from psycopg import sql

    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    PostgresStore(pg_conninfo, schema=schema).close()
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.schema_version SET version = 99").format(sql.Identifier(schema))
        )
    with pytest.raises(SchemaError, match="version 99"):
        PostgresStore(pg_conninfo, schema=schema)
    with psycopg.connect(pg_conninfo) as conn:
        query = sql.SQL("SELECT version FROM {}.schema_version").format(sql.Identifier(schema))
        assert conn.execute(query).fetchall() == [(99,)]


def test_foreign_tables_are_refused(pg_conninfo: str, new_schema: Callable[[], str]) -> None:
    """A schema with a ``hooks`` table that resthooks did not create raises SchemaError."""
    import psycopg
    from psycopg import sql

    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE TABLE {}.hooks (x int)").format(sql.Identifier(schema)))
    with pytest.raises(SchemaError, match="not a resthooks schema"):
        PostgresStore(pg_conninfo, schema=schema)


def test_concurrent_first_opens_migrate_once(
    pg_conninfo: str, new_schema: Callable[[], str]
) -> None:
    """Four workers opening a new schema at the same moment all succeed on one schema."""
    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []
    start = threading.Barrier(4)

    def open_store() -> None:
        start.wait()
        try:
            stores.append(PostgresStore(pg_conninfo, schema=schema))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    assert errors == []
    assert _count(pg_conninfo, schema, "schema_version") == 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"schema": ""}, "schema"),
        ({"schema": "x" * 64}, "schema"),
        ({"min_size": 0}, "min_size"),
        ({"min_size": 5, "max_size": 2}, "min_size"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, object], field: str) -> None:
    """Unusable options raise ConfigurationError naming the option, before connecting."""
    from resthooks.stores.postgres import PostgresStore

    with pytest.raises(ConfigurationError, match=f"^{field}:"):
        PostgresStore("host=/nonexistent port=1", **options)  # type: ignore[arg-type]


def test_unreachable_database_is_a_store_error(tmp_path: object) -> None:
    """A server that cannot be reached: the store is made (it waits for the server, see
    test_postgres_outage.py), and each call raises StoreError saying so, with psycopg's error
    as the cause."""
    import psycopg

    from resthooks.stores.postgres import PostgresStore

    store = PostgresStore(f"host={tmp_path} port=1 user=nobody connect_timeout=2", timeout=1)
    try:
        with pytest.raises(StoreError, match="cannot be reached") as caught:
            store.stats()
        assert isinstance(caught.value.__cause__, psycopg.Error)
    finally:
        store.close()


def test_driver_errors_are_store_errors(pg_store: PostgresStore, pg_conninfo: str) -> None:
    """When the tables vanish under a store, its calls raise StoreError, not psycopg's."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(pg_store.schema)))
    with pytest.raises(StoreError) as caught:
        pg_store.get_hook("hook_1")
    assert isinstance(caught.value.__cause__, psycopg.errors.UndefinedTable)


def test_closed_store_refuses_work(pg_store: PostgresStore) -> None:
    """A closed store raises StoreError."""
    pg_store.close()
    with pytest.raises(StoreError, match="closed"):
        pg_store.list_hooks()


def test_a_pool_of_the_hosts_is_used_and_left_open(
    pg_conninfo: str, new_schema: Callable[[], str]
) -> None:
    """A store built on the host's ConnectionPool works through it and does not close it."""
    from psycopg_pool import ConnectionPool

    from resthooks.stores.postgres import PostgresStore

    with ConnectionPool(pg_conninfo, min_size=1, max_size=2, open=True) as pool:
        store = PostgresStore(pool, schema=new_schema())
        store.add_hook(_hook(1), max_per_owner=None)
        store.close()
        assert not pool.closed
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_hosts_connection_carries_every_operation(
    pg_conninfo: str, new_schema: Callable[[], str]
) -> None:
    """With a callable, the store works on the host's connection: inside the host's open
    transaction (rolled back with it, even when the store's statement comes first), in a
    transaction of its own otherwise, and never closes it."""
    import psycopg

    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        store = PostgresStore(lambda: conn, schema=schema)
        conn.autocommit = False  # what Django's atomic() does first, before any BEGIN
        store.add_hook(_hook(1), max_per_owner=None)
        assert _count(pg_conninfo, schema, "hooks") == 0, "not committed by the store"
        conn.rollback()
        conn.autocommit = True
        assert store.get_hook("hook_1") is None
        store.add_hook(_hook(2), max_per_owner=None)  # autocommit: committed at once
        assert _count(pg_conninfo, schema, "hooks") == 1
        with conn.transaction():
            conn.execute("SELECT 1")
            store.add_hook(_hook(3), max_per_owner=None)
            assert store.get_hook("hook_3") is not None
        assert _count(pg_conninfo, schema, "hooks") == 2
        store.close()
        assert not conn.closed
        with pytest.raises(StoreError, match="host's connections"):
            PostgresStore(lambda: conn, schema=schema).wait_for_work(0.01)


def test_a_callable_must_return_a_psycopg_connection(
    pg_conninfo: str, new_schema: Callable[[], str]
) -> None:
    """A callable that returns something else is a ConfigurationError naming conninfo."""
    from resthooks.stores.postgres import PostgresStore

    with pytest.raises(ConfigurationError, match="conninfo"):
        PostgresStore(object, schema=new_schema())  # type: ignore[arg-type]


def test_lazy_export_from_resthooks_stores() -> None:
    """``resthooks.stores.PostgresStore`` is the class of ``resthooks.stores.postgres``."""
    import resthooks.stores
    from resthooks.stores.postgres import PostgresStore

    assert resthooks.stores.PostgresStore is PostgresStore


# -- storage details ---------------------------------------------------------------------------


def test_fan_out_stores_the_body_once(pg_store: PostgresStore, pg_conninfo: str) -> None:
    """One emit to three hooks stores one body; an emit that matches no hook stores none."""
    for n in range(3):
        pg_store.add_hook(_hook(n), max_per_owner=None)
    made = pg_store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
    assert len(made) == 3
    assert pg_store.enqueue(owner="acme", event="task/created", body=b"{}", now=T0) == []
    assert _count(pg_conninfo, pg_store.schema, "messages") == 1
    assert _count(pg_conninfo, pg_store.schema, "deliveries") == 3


def test_enqueue_many_fans_out_every_event_in_order(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """enqueue_many (one statement for all its events) returns each event's deliveries in
    the events' order, then each event's hooks in subscription order, with the event's own
    owner, event and body; an event no hook matches stores nothing, not even its body; and
    the ids are the rows it wrote. The same through the host's rolled-back transaction leaves
    nothing."""
    import psycopg

    def hook(n: int, owner: str, event: str) -> Hook:
        return Hook(
            id=f"hook_{n}",
            owner=owner,
            event=event,
            target_url=f"https://h{n}.example.com/{n}",
            created_at=T0 + timedelta(seconds=-n),  # subscription order is not id order
            updated_at=T0,
        )

    for n, owner, event in [
        (1, "acme", "party/created"),
        (2, "acme", "party/created"),
        (3, "bob", "party/created"),
        (4, "acme", "task/created"),
    ]:
        pg_store.add_hook(hook(n, owner, event), max_per_owner=None)
    events = [
        ("acme", "party/created", b'{"n":1}'),
        ("nobody", "party/created", b'{"n":2}'),
        ("bob", "party/created", b'{"n":3}'),
        ("acme", "task/created", b'{"n":4}'),
        ("acme", "party/created", b'{"n":5}'),
    ]
    made = pg_store.enqueue_many(events, now=T0)
    assert [(d.owner, d.event, d.hook_id) for d in made] == [
        ("acme", "party/created", "hook_2"),
        ("acme", "party/created", "hook_1"),
        ("bob", "party/created", "hook_3"),
        ("acme", "task/created", "hook_4"),
        ("acme", "party/created", "hook_2"),
        ("acme", "party/created", "hook_1"),
    ]
    assert len({d.id for d in made}) == 6
    for d in made:
        stored = pg_store.get_delivery(d.id)
        assert stored is not None
        assert (d.hook_id, d.owner, d.event) == (stored.hook_id, stored.owner, stored.event)
    assert _count(pg_conninfo, pg_store.schema, "messages") == 4  # not the unmatched one
    claims = pg_store.claim_due(now=T0, limit=10, lease_until=T0 + timedelta(minutes=5))
    bodies = {c.delivery.id: c.body for c in claims}
    assert [bodies[d.id] for d in made] == [
        b'{"n":1}',
        b'{"n":1}',
        b'{"n":3}',
        b'{"n":4}',
        b'{"n":5}',
        b'{"n":5}',
    ]
    with psycopg.connect(pg_conninfo) as conn:
        assert len(pg_store.enqueue_many(events, now=T0, connection=conn)) == 6
        conn.rollback()
    assert _count(pg_conninfo, pg_store.schema, "deliveries") == 6
    assert pg_store.enqueue_many([], now=T0) == []


def test_enqueue_many_plan_joins_nothing_back_to_its_events(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """enqueue_many finds each event's hooks through the hooks' index and joins no delivery
    back to its event: the planner cannot see how many events an array holds and ran such
    joins as nested loops over the batch (every delivery against every event, 10,000
    comparisons per join for 100 events). Executed with 200 events to 2 hooks, no join
    discards a row."""
    import re

    import psycopg
    from psycopg import sql

    for n in range(2):
        pg_store.add_hook(_hook(n), max_per_owner=None)
    other = _hook(9)
    pg_store.add_hook(
        Hook(
            id="hook_bob",
            owner="bob",
            event="task/created",
            target_url=other.target_url,
            created_at=T0,
            updated_at=T0,
        ),
        max_per_owner=None,
    )
    events = 200
    params = {
        "owners": ["acme", "nobody"] * (events // 2),
        "events": ["party/created"] * events,
        "bodies": [b"{}"] * events,
        "messages": pg_store._messages_table,
        "now": T0,
        "guard": False,
    }
    with psycopg.connect(pg_conninfo) as conn:
        rows = conn.execute(
            sql.SQL("EXPLAIN (ANALYZE) ") + pg_store._q(pg_store._ENQUEUE_MANY), params
        )
        plan = "\n".join(r[0] for r in rows.fetchall())
        conn.rollback()
    assert "Nested Loop" in plan, plan  # the probes of the hooks' index, per event
    removed = [int(n) for n in re.findall(r"Rows Removed by Join Filter: (\d+)", plan)]
    assert not [n for n in removed if n > 0], plan
    assert re.search(r"Index (Only )?Scan using \S+ on hooks", plan), plan


def test_purge_deletes_bodies_no_delivery_needs(pg_store: PostgresStore, pg_conninfo: str) -> None:
    """Purging the final deliveries of a message deletes the message; a message that a
    pending delivery still needs is kept."""
    pg_store.add_hook(_hook(1), max_per_owner=None)
    pg_store.add_hook(_hook(2), max_per_owner=None)
    pg_store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
    claims = pg_store.claim_due(now=T0, limit=10, lease_until=T0 + timedelta(minutes=1))
    ok = [
        Outcome(delivery_id=c.delivery.id, token=c.token, kind=OutcomeKind.DELIVERED)
        for c in claims
    ]
    pg_store.record(ok[:1], now=T0)
    assert pg_store.purge(before=T0 + timedelta(days=1)) == 1
    assert _count(pg_conninfo, pg_store.schema, "messages") == 1, "the other delivery needs it"
    pg_store.record(ok[1:], now=T0)
    assert pg_store.purge(before=T0 + timedelta(days=1)) == 1
    assert _count(pg_conninfo, pg_store.schema, "messages") == 0


def test_nul_in_a_response_is_recorded(pg_store: PostgresStore) -> None:
    """A response excerpt with NUL characters (which PostgreSQL text cannot hold) is still
    recorded, with the NULs replaced."""
    pg_store.add_hook(_hook(1), max_per_owner=None)
    pg_store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
    (claim,) = pg_store.claim_due(now=T0, limit=1, lease_until=T0 + timedelta(minutes=1))
    attempt = Attempt(
        delivery_id=claim.delivery.id,
        number=1,
        started_at=T0,
        duration=0.1,
        status=200,
        response_excerpt="ok\x00ok",
    )
    outcome = Outcome(
        delivery_id=claim.delivery.id,
        token=claim.token,
        kind=OutcomeKind.DELIVERED,
        attempt=attempt,
    )
    (result,) = pg_store.record([outcome], now=T0)
    assert result.applied
    assert [a.response_excerpt for a in pg_store.attempts(claim.delivery.id)] == ["ok\ufffdok"]


def test_per_host_limit_holds_across_concurrent_stores(
    pg_conninfo: str, new_schema: Callable[[], str]
) -> None:
    """Four stores (four workers) claiming at once never put more than the per-host limit
    in flight to one host."""
    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    stores = [PostgresStore(pg_conninfo, schema=schema) for _ in range(4)]
    try:
        stores[0].add_hook(_hook(1, "https://one.example.com"), max_per_owner=None)
        stores[0].add_hook(_hook(2, "https://two.example.com"), max_per_owner=None)
        for _ in range(20):
            stores[0].enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
        claimed: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(4)

        def claim(store: PostgresStore) -> None:
            start.wait()
            for _ in range(5):
                got = store.claim_due(
                    now=T0, limit=2, lease_until=T0 + timedelta(minutes=1), max_in_flight_per_host=3
                )
                with lock:
                    claimed.extend(c.hook.target_url.split("/")[2] for c in got)

        threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(claimed) == ["one.example.com"] * 3 + ["two.example.com"] * 3
    finally:
        for store in stores:
            store.close()


# -- wake-ups ----------------------------------------------------------------------------------


def test_wait_for_work_wakes_on_enqueue_and_times_out(
    pg_conninfo: str, new_schema: Callable[[], str]
) -> None:
    """With notify on, a worker waiting for work times out while nothing is enqueued, is
    not woken by a rolled-back outbox emit, and is woken by a committed one."""
    import psycopg

    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    worker = PostgresStore(pg_conninfo, schema=schema, notify=True)
    host = PostgresStore(pg_conninfo, schema=schema, notify=True)
    try:
        host.add_hook(_hook(1), max_per_owner=None)
        assert worker.wait_for_work(0.05) is False
        with psycopg.connect(pg_conninfo) as conn:
            host.enqueue(owner="acme", event="party/created", body=b"{}", now=T0, connection=conn)
            conn.rollback()
        assert worker.wait_for_work(0.3) is False
        with psycopg.connect(pg_conninfo) as conn:
            host.enqueue(owner="acme", event="party/created", body=b"{}", now=T0, connection=conn)
            conn.commit()
        assert worker.wait_for_work(30) is True
    finally:
        worker.close()
        host.close()


def test_unique_ids(pg_store: PostgresStore) -> None:
    """Delivery ids look like Standard Webhooks message ids and are unique."""
    for n in range(5):
        pg_store.add_hook(_hook(n), max_per_owner=None)
    ids = [d.id for d in pg_store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)]
    assert len(set(ids)) == 5
    assert all(i.startswith("msg_") and len(i) == 36 for i in ids)
    assert uuid.UUID(ids[0][4:])


def test_per_host_claim_plan_reads_each_host_by_index(
    pg_conninfo: str, new_schema: Callable[[], str]
) -> None:
    """The per-host claim walks the index of due deliveries by host, a few rows per host,
    and ranks no window over every due delivery: its cost follows the hosts, not the
    backlog."""
    import psycopg
    from psycopg import sql

    from resthooks.stores.postgres import PostgresStore

    schema = new_schema()
    store = PostgresStore(pg_conninfo, schema=schema)
    try:
        for n in range(20):
            store.add_hook(_hook(n, f"https://h{n % 4}.example.com/{n}"), max_per_owner=None)
        for i in range(200):
            store.enqueue(
                owner="acme", event="party/created", body=b"{}", now=T0 + timedelta(seconds=i)
            )
        params = {
            "now": T0 + timedelta(hours=1),
            "limit": 10,
            "lease_until": T0 + timedelta(hours=2),
            "per_host": 4,
        }
        query = store._q(store._CLAIM_PER_HOST + store._CLAIM_UPDATE)
        with psycopg.connect(pg_conninfo) as conn:
            conn.execute(sql.SQL("ANALYZE {}.deliveries").format(sql.Identifier(schema)))
            # Small tables may be scanned whole when that is cheaper; forbid it to see the
            # plan a large backlog gets.
            conn.execute("SET enable_seqscan = off")
            plan = "\n".join(
                r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + query, params).fetchall()
            )
            conn.rollback()
        assert "deliveries_due_by_host" in plan, plan
        assert "WindowAgg" not in plan, plan
        assert "Seq Scan on deliveries" not in plan, plan
        # What each host has in flight is an index probe per host (a subplan of the per-host
        # step), not a count of every host's deliveries in flight grouped and joined to the
        # hosts (which the planner filtered every host against every busy one).
        assert "deliveries_host_idx" in plan, plan
        assert "InitPlan" in plan or "SubPlan" in plan, plan
        assert "Group Key: deliveries.host" not in plan, plan
        claims = store.claim_due(
            now=T0 + timedelta(hours=1),
            limit=10,
            lease_until=T0 + timedelta(hours=2),
            max_in_flight_per_host=4,
        )
        hosts = [c.hook.target_url.split("/")[2] for c in claims]
        assert len(claims) == 10
        assert all(hosts.count(h) <= 4 for h in hosts)
        dues = [c.delivery.next_attempt_at for c in claims]
        assert dues == sorted(dues)  # type: ignore[type-var]
    finally:
        store.close()


def test_per_host_claim_reads_past_the_first_row_only_of_the_hosts_it_can_take(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """Under the per-host limit the claim reads each host's oldest due delivery, then the
    rest of its room only for the ``limit`` hosts whose oldest come first (no other host can
    have a delivery among the claim's): with 50 hosts of 20 due deliveries each, a claim of
    10 under a limit of 4 reads at most 50 + 10 x 4 rows of the index, not 50 x 4. Each read
    is a heap page until autovacuum has set the visibility map."""
    import re

    import psycopg
    from psycopg import sql

    hosts, per_host, limit = 50, 4, 10
    for n in range(hosts):
        pg_store.add_hook(_hook(n, f"https://h{n}.example.com/{n}"), max_per_owner=None)
    for i in range(20):
        pg_store.enqueue(
            owner="acme", event="party/created", body=b"{}", now=T0 + timedelta(seconds=i)
        )
    params = {
        "now": T0 + timedelta(hours=1),
        "limit": limit,
        "lease_until": T0 + timedelta(hours=2),
        "per_host": per_host,
    }
    query = pg_store._q(pg_store._CLAIM_PER_HOST + pg_store._CLAIM_UPDATE)
    with psycopg.connect(pg_conninfo) as conn:
        conn.execute("SET enable_seqscan = off")  # the plan of a large backlog
        rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE) ") + query, params).fetchall()
        plan = [r[0] for r in rows]
        conn.rollback()
    read = sum(
        int(m.group(1)) * int(m.group(2))
        for line in plan
        if "deliveries_due_by_host" in line
        for m in [re.search(r"actual time=\S+ rows=(\d+) loops=(\d+)", line)]
        if m
    )
    assert 0 < read <= hosts + limit * per_host, "\n".join(plan)
    claims = pg_store.claim_due(
        now=T0 + timedelta(hours=1),
        limit=limit,
        lease_until=T0 + timedelta(hours=2),
        max_in_flight_per_host=per_host,
    )
    # The oldest first: each host's first delivery (due at T0), one per host.
    assert [c.delivery.next_attempt_at for c in claims] == [T0] * limit


def test_the_per_host_claim_is_never_jit_compiled(
    pg_store: PostgresStore, pg_conninfo: str
) -> None:
    """The per-host claim's estimate grows with the backlog (the planner cannot read its
    per-host LIMIT) while its cost does not: past ``jit_above_cost`` PostgreSQL compiled it,
    70 ms of a 100 ms claim at a million pending. Its transaction turns JIT off."""
    import psycopg
    from psycopg import sql

    for n in range(3):
        pg_store.add_hook(_hook(n, f"https://h{n}.example.com/{n}"), max_per_owner=None)
    pg_store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
    params = {
        "now": T0 + timedelta(hours=1),
        "limit": 10,
        "lease_until": T0 + timedelta(hours=2),
        "per_host": 4,
    }
    query = pg_store._q(pg_store._CLAIM_PER_HOST + pg_store._CLAIM_UPDATE)
    with psycopg.connect(pg_conninfo) as conn:
        row = conn.execute("SELECT pg_jit_available()").fetchone()
        if not (row and row[0]):
            pytest.skip("this PostgreSQL server was built without JIT (no LLVM)")
        conn.execute("SET jit = on")
        conn.execute("SET jit_above_cost = 0")  # every query costs more: JIT for all

        def explained() -> str:
            rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE) ") + query, params)
            return "\n".join(r[0] for r in rows.fetchall())

        assert "JIT:" in explained()  # the server compiles it when let
        conn.rollback()
        conn.execute("SET jit_above_cost = 0")
        conn.execute(pg_store._CLAIM_PER_HOST_LOCK, (f"{pg_store._lock_key}:claim",))
        plan = explained()
        conn.rollback()
    assert "JIT:" not in plan, plan


def test_a_version_1_schema_is_migrated(pg_conninfo: str, new_schema: Callable[[], str]) -> None:
    """A schema at version 1 is brought to the current version on open, its rows kept, and
    gains the index of due deliveries by host."""
    import psycopg
    from psycopg import sql

    from resthooks.stores.postgres import _MIGRATIONS, SCHEMA_VERSION, PostgresStore

    schema = new_schema()
    with psycopg.connect(pg_conninfo, autocommit=True) as conn:
        name = sql.Identifier(schema)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(name))
        conn.execute(sql.SQL("CREATE TABLE {}.schema_version (version integer)").format(name))
        for statement in _MIGRATIONS[1]:
            conn.execute(sql.SQL(statement).format(s=name))
        conn.execute(sql.SQL("INSERT INTO {}.schema_version VALUES (1)").format(name))
    store = PostgresStore(pg_conninfo, schema=schema)
    try:
        store.add_hook(_hook(1), max_per_owner=None)
        made = store.enqueue(owner="acme", event="party/created", body=b"{}", now=T0)
        claims = store.claim_due(
            now=T0, limit=5, lease_until=T0 + timedelta(hours=1), max_in_flight_per_host=4
        )
        assert [d.id for d in made] == [c.delivery.id for c in claims]
    finally:
        store.close()
    with psycopg.connect(pg_conninfo) as conn:
        version = conn.execute(
            sql.SQL("SELECT max(version) FROM {}.schema_version").format(sql.Identifier(schema))
        ).fetchone()
        index = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = %s "
            "AND indexname = 'deliveries_due_by_host'",
            (schema,),
        ).fetchone()
    assert (version[0] if version else None, index[0] if index else None) == (SCHEMA_VERSION, 1)
