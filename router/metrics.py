"""Prometheus metrics, one registry per app (so tests can build many apps)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from router.store.lifecycle import StepApplied
    from router.store.replica import ReplicaStatus

#: Upper bounds, in seconds, of ``omniroute_routing_seconds`` (time to route
#: and record one contact).
ROUTING_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


#: Upper bounds, in seconds, of ``omniroute_delivery_lag_seconds`` (from the
#: commit of an event to its delivery).
DELIVERY_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0, 3600.0)

#: Upper bounds, in seconds, of ``omniroute_assign_wait_seconds`` (from a
#: contact's arrival to the acceptance of its offer: seconds to an hour).
ASSIGN_WAIT_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: Upper bounds of ``omniroute_batch_items`` (items in one database batch).
BATCH_ITEMS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
#: What became of an offer, in ``omniroute_offers_decided_total{result}``.
OFFER_RESULTS = ("accepted", "rejected", "expired")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._routed: dict[tuple[str, str, str], Any] = {}
        self._latency: dict[str, Any] = {}
        self.batch_items = Histogram(
            "omniroute_batch_items",
            "Items in one database batch (group commit), by batcher (resolve, record)",
            ["batcher"],
            buckets=BATCH_ITEMS_BUCKETS,
            registry=r,
        )
        self.delivery_lag = Histogram(
            "omniroute_delivery_lag_seconds",
            "From an event's write to its delivery (2xx from the destination)",
            ["destination"],
            buckets=DELIVERY_LAG_BUCKETS,
            registry=r,
        )
        self.delivery_attempts = Counter(
            "omniroute_delivery_attempts",
            "Attempts to deliver an event, by result (delivered, error)",
            ["destination", "result"],
            registry=r,
        )
        self.deliveries_failed = Counter(
            "omniroute_deliveries_failed",
            "Events given up after the retry horizon (dead letters)",
            ["destination"],
            registry=r,
        )
        self.deliveries_pending = Gauge(
            "omniroute_deliveries_pending",
            "Events waiting for delivery (due or retrying)",
            ["destination"],
            registry=r,
        )
        self.destination_paused = Gauge(
            "omniroute_destination_paused",
            "1 while this instance pauses a destination that keeps failing (circuit open)",
            ["destination"],
            registry=r,
        )
        self.contacts = Counter(
            "omniroute_contacts_routed",
            "Contacts routed and recorded",
            ["channel", "queue", "adapter"],
            registry=r,
        )
        self.duplicates = Counter(
            "omniroute_contacts_duplicate",
            "Deliveries answered as duplicates",
            ["adapter"],
            registry=r,
        )
        self.ignored = Counter(
            "omniroute_events_ignored",
            "Delivered events that carry no contact",
            ["adapter"],
            registry=r,
        )
        self.unstorable = Counter(
            "omniroute_unstorable_values",
            "Contacts carrying a value PostgreSQL cannot store: replaced (the characters"
            " replaced by U+FFFD, routed) or rejected (not recorded)",
            ["adapter", "action"],
            registry=r,
        )
        self.latency = Histogram(
            "omniroute_routing_seconds",
            "Time to route and record one contact",
            ["channel"],
            buckets=ROUTING_SECONDS_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "omniroute_errors",
            "Requests answered with an error",
            ["code", "status"],
            registry=r,
        )
        self.client_timeouts = Counter(
            "omniroute_client_timeouts",
            "Requests cut off because the client sent its headers or body too slowly",
            ["phase"],
            registry=r,
        )
        self.client_disconnects = Counter(
            "omniroute_client_disconnects",
            "Requests whose client went away before they were read or answered",
            registry=r,
        )
        self.ruleset_info = Gauge(
            "omniroute_ruleset_loaded_timestamp",
            "When the active ruleset was loaded",
            ["version"],
            registry=r,
        )
        self.rules_reload_failures = Counter(
            "omniroute_rules_reload_failures",
            "Ruleset edits refused because they did not load or their tests failed",
            registry=r,
        )
        self.rules_tests_refused = Counter(
            "omniroute_rules_tests_refused",
            "Ruleset versions refused because their own tests fail, by where",
            ["at"],
            registry=r,
        )

        self.context_lookups = Counter(
            "omniroute_context_lookups",
            "External context provider lookups by result",
            ["result"],
            registry=r,
        )

        self.overflow_steps = Counter(
            "omniroute_overflow_steps",
            "Overflow steps applied to waiting contacts",
            ["queue", "to_queue", "channel", "adapter"],
            registry=r,
        )
        self.overflow_lateness = Histogram(
            "omniroute_overflow_step_delay_seconds",
            "Time from an overflow step's due time to its application",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 300.0),
            registry=r,
        )
        self.expired = Counter(
            "omniroute_contacts_expired",
            "Open contacts closed because their lifetime ran out",
            ["channel", "queue"],
            registry=r,
        )
        self.replica_lag = Gauge(
            "omniroute_replica_lag_seconds",
            "How far the reporting replica is behind the primary, an upper bound"
            " (NaN: not measured, away or not configured)",
            registry=r,
        )
        self.replica_lag_bytes = Gauge(
            "omniroute_replica_lag_bytes",
            "WAL the reporting replica has not replayed yet (NaN: not measured)",
            registry=r,
        )
        self.replica_up = Gauge(
            "omniroute_replica_up",
            "1 while the reporting replica answers its measurement, else 0",
            registry=r,
        )
        self.replica_serving = Gauge(
            "omniroute_replica_serving",
            "1 while reporting reads go to the replica (not away, not lagging), else 0",
            registry=r,
        )
        self.offers_made = Counter(
            "omniroute_offers_made",
            "Offers made to agents (assigned queues)",
            ["queue"],
            registry=r,
        )
        self.offers_decided = Counter(
            "omniroute_offers_decided",
            "Offers that ended, by result: accepted, rejected, expired (timed out)",
            ["queue", "result"],
            registry=r,
        )
        self.assign_rounds = Counter(
            "omniroute_assign_rounds",
            "Assignment rounds run, by scope: all (every agent) or agents (those a wake-up named)",
            ["scope"],
            registry=r,
        )
        self.assign_read = Counter(
            "omniroute_assign_read",
            "What assignment rounds read, by scope and kind: agents, waiting (contacts)",
            ["scope", "kind"],
            registry=r,
        )
        self.assign_wait = Histogram(
            "omniroute_assign_wait_seconds",
            "From a contact's arrival (routed) to its assignment (its offer accepted)",
            ["queue"],
            buckets=ASSIGN_WAIT_BUCKETS,
            registry=r,
        )
        for gauge in (self.replica_lag, self.replica_lag_bytes):
            gauge.set(float("nan"))

    def overflow_step(self, step: StepApplied) -> None:
        self.overflow_steps.labels(
            queue=step.before.queue,
            to_queue=step.after.queue,
            channel=step.channel,
            adapter=step.adapter,
        ).inc()
        self.overflow_lateness.observe(max(0.0, (step.at - step.due).total_seconds()))

    def routed(self, channel: str, queue: str, adapter: str, seconds: float) -> None:
        # the labelled children are looked up once per label set: ``labels()``
        # validates and locks on every call, and this runs for every contact
        counter = self._routed.get((channel, queue, adapter))
        if counter is None:
            counter = self.contacts.labels(channel=channel, queue=queue, adapter=adapter)
            self._routed[(channel, queue, adapter)] = counter
        counter.inc()
        histogram = self._latency.get(channel)
        if histogram is None:
            histogram = self._latency[channel] = self.latency.labels(channel=channel)
        histogram.observe(seconds)

    def offers(self, queue: str, *, made: int = 0, result: str | None = None) -> None:
        """Offers made for a queue, or one that ended with ``result``."""
        if made:
            self.offers_made.labels(queue=queue).inc(made)
        if result is not None:
            self.offers_decided.labels(queue=queue, result=result).inc()

    def assign_round(self, scope: str, *, agents: int, waiting: int) -> None:
        """One assignment round of ``scope`` and what it read."""
        self.assign_rounds.labels(scope=scope).inc()
        self.assign_read.labels(scope=scope, kind="agents").inc(agents)
        self.assign_read.labels(scope=scope, kind="waiting").inc(waiting)

    def replica(self, status: ReplicaStatus) -> None:
        """The reporting replica's gauges, from its last measurement."""
        nan = float("nan")
        self.replica_lag.set(nan if status.lag_seconds is None else status.lag_seconds)
        self.replica_lag_bytes.set(nan if status.lag_bytes is None else status.lag_bytes)
        self.replica_up.set(1 if status.state in ("ok", "lagging", "unknown") else 0)
        self.replica_serving.set(1 if status.reads == "replica" else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
