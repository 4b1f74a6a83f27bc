"""The wiring every service shares: clients, subscriptions, background loops, start and stop.

A service builds one `ServiceKit`, registers its handlers, loops, checks, in-flight reporter and
its own start and stop steps (`on_start`: indexes; `on_stop`: closing its clients), and hands it
to `create_service_app`, whose lifespan calls `start` and `stop`; no service touches the lifespan. A service that
consumes (a subscription, or its own consumer declared with `track_consumer`) is checked on its
consumer: `readiness` has a `consumer` check and `liveness` fails when it stops polling.
"""

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from flywheel_contracts import catalog
from flywheel_contracts.envelope import Envelope
from flywheel_contracts.events import InFlightWork, ServiceStopping
from flywheel_contracts.payload import EventPayload
from flywheel_contracts.runtime.consumer import KafkaConsumer, consumer_config
from flywheel_contracts.runtime.consumer_health import ConsumerHealth, StallGate
from flywheel_contracts.runtime.delivery import (
    DeadLetterHealth,
    OutageHealth,
    RedeliveryPolicy,
    RetryPolicy,
)
from flywheel_contracts.runtime.dispatcher import EventDispatcher, Handler, InvalidHandler, Route
from flywheel_contracts.runtime.emitting import FROM_CAUSE, RunId, event_of
from flywheel_contracts.runtime.event_consumer import EventConsumer
from flywheel_contracts.runtime.health import Readiness, ReadinessCheck, run_checks
from flywheel_contracts.runtime.idempotency import ProcessedEvents
from flywheel_contracts.runtime.kafka_access import (
    KafkaAccessRefused,
    check_access,
    env_names,
)
from flywheel_contracts.runtime.publisher import Publisher
from flywheel_contracts.runtime.settings import ServiceSettings
from flywheel_contracts.runtime.topics import Durability, ensure_topics, new_topics

P = TypeVar("P", bound=EventPayload)

LoopFactory = Callable[[], Coroutine[Any, Any, None]]
"""Starts a long-running loop (a reconciler); called again if the loop crashes."""

InFlightReporter = Callable[[], Awaitable[Sequence[InFlightWork]]]

Hook = Callable[[], Awaitable[None]]
"""A service's own start or stop step (`on_start`, `on_stop`)."""

_RESTART_DELAY_S = 1.0
_READINESS_TIMEOUT_S = 3.0
_STOPPING_PUBLISH_TIMEOUT_S = 5.0

_log = structlog.get_logger("flywheel.kit")


async def _nothing_in_flight() -> Sequence[InFlightWork]:
    return ()


class ServiceKit:
    """One service instance's Kafka, Mongo, handlers and background loops."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.service = settings.service_name
        self.mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo.url.get_secret_value(),
            tz_aware=True,
            appname=self.service,
            serverSelectionTimeoutMS=int(settings.mongo.timeout_s * 1000),
            connectTimeoutMS=int(settings.mongo.timeout_s * 1000),
        )
        self.db: AsyncDatabase[dict[str, Any]] = self.mongo[settings.mongo.database]
        self.publisher = Publisher(
            settings.kafka, client_id=f"{self.service}.{settings.instance_id}"
        )
        self.processed = ProcessedEvents(self.db, consumer=self.service)
        self.consumer_health = ConsumerHealth(
            settings.consumer_limits,
            statistics_interval_ms=settings.health.statistics_interval_ms,
        )
        """Whether the consumer polls and holds partitions (`HEALTH__*`)."""
        self.stall_gate: StallGate | None = StallGate() if settings.testing.stall_hook else None
        """The stall test hook, None unless `TESTING__STALL_HOOK` is on."""
        self._own_consumer = False
        self._events: EventConsumer | None = None
        self._consuming: asyncio.Task[None] | None = None
        self._routes: dict[str, Route[Any]] = {}
        self._loops: dict[str, LoopFactory] = {}
        self.dead_letters = DeadLetterHealth()
        """Fails readiness while a dead letter cannot be written (its message is redelivered)."""
        delivery = settings.delivery
        self.redelivery = RedeliveryPolicy(
            base_delay_s=delivery.backoff_max_s,
            max_delay_s=settings.redelivery_max_delay_s,
        )
        self.outages = OutageHealth(
            # A round is at most max_attempts tries with their backoff, then the redelivery
            # delay; an entry not refreshed for well over that belongs to a revoked partition.
            stale_after_s=2 * self.redelivery.max_delay_s
            + delivery.max_attempts * (delivery.backoff_max_s + 2 * settings.mongo.timeout_s)
            + 60.0
        )
        """Fails readiness while a message waits on an outage (it is redelivered, never
        dead-lettered), naming its topic, partition, offset and last error."""
        self._checks: dict[str, ReadinessCheck] = {
            "kafka": self.publisher.check_connection,
            "mongo": self._ping_mongo,
            "dead_letters": self.dead_letters.check,
            "redelivery": self.outages.check,
        }
        self._in_flight: InFlightReporter = _nothing_in_flight
        self._start_hooks: list[Hook] = []
        self._stop_hooks: list[Hook] = []
        self._running: list[asyncio.Task[None]] = []
        self._started = False

    # Registration, before start.

    def subscribe(
        self,
        event: type[P],
        handler: Handler[P],
        *,
        topic: str | None = None,
        on_invalid: InvalidHandler | None = None,
    ) -> None:
        """Deliver `event`s from `topic` (default: the event type) to `handler`; `on_invalid`
        is told of an `event` failing validation before it is dead-lettered."""
        self._require_not_started()
        name = self.settings.kafka.topic(topic or event.EVENT_TYPE)
        if name in self._routes:
            raise ValueError(f"{self.service} already subscribes to {name}")
        self._routes[name] = Route(event, handler, on_invalid)

    def add_loop(self, name: str, factory: LoopFactory) -> None:
        """Run `factory()` from start to stop, restarting it if it crashes."""
        self._require_not_started()
        self._loops[name] = factory

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    def track_consumer(self) -> ConsumerHealth:
        """For a service polling a consumer of its own instead of subscribing: its health,
        whose `client_hooks()` go into that consumer's configuration, becomes this service's
        `consumer` readiness check and liveness. That consumer should also wait on
        `stall_gate`, when there is one, before each poll."""
        self._require_not_started()
        self._own_consumer = True
        return self.consumer_health

    def on_start(self, hook: Hook) -> None:
        """Run `hook` at start, once Kafka and Mongo are reachable and before any event is
        handled or any loop runs: a service's own indexes."""
        self._require_not_started()
        self._start_hooks.append(hook)

    def on_stop(self, hook: Hook) -> None:
        """Run `hook` at the end of stop, after the consumer and the loops have stopped (even if
        stopping them failed): close the clients they used."""
        self._require_not_started()
        self._stop_hooks.append(hook)

    def report_in_flight_with(self, reporter: InFlightReporter) -> None:
        """`reporter` lists the work this instance holds, for `service.stopping`."""
        self._in_flight = reporter

    # Use.

    def new_event(
        self,
        payload: EventPayload,
        *,
        cause: Envelope[Any] | None = None,
        run_id: RunId = FROM_CAUSE,
        discriminator: str = "",
    ) -> Envelope[Any]:
        """An envelope produced by this service (`NewEvent`): its id derived from `cause`, its
        run the cause's unless `run_id` says otherwise."""
        return event_of(
            self.service, payload, cause=cause, run_id=run_id, discriminator=discriminator
        )

    async def emit(
        self,
        payload: EventPayload,
        *,
        cause: Envelope[Any] | None = None,
        run_id: RunId = FROM_CAUSE,
        discriminator: str = "",
    ) -> Envelope[Any]:
        """Build the event as `new_event` does and publish it (`Emit`): returns it once Kafka
        acknowledged it."""
        event = self.new_event(payload, cause=cause, run_id=run_id, discriminator=discriminator)
        await self.publisher.publish(event)
        return event

    @property
    def consumes(self) -> bool:
        return bool(self._routes) or self._own_consumer

    async def readiness(self) -> Readiness:
        return await run_checks(self._checks, _READINESS_TIMEOUT_S)

    def liveness(self) -> str | None:
        """Why this instance should be restarted (its consumer stopped polling), or None."""
        return self.consumer_health.liveness_problem() if self.consumes else None

    # Lifecycle.

    async def start(self) -> None:
        self._require_not_started()
        self._started = True
        try:
            await asyncio.to_thread(
                check_access, self.settings.kafka, env_names(self.settings.env_prefix)
            )
        except KafkaAccessRefused as refused:
            _log.error("kafka.access_refused", reason=str(refused))
            raise
        await ensure_topics(
            self.settings.kafka,
            new_topics(
                self._catalog_topics(),
                prefix=self.settings.kafka.topic_prefix,
                durability=Durability.of(self.settings.kafka),
            ),
        )
        await self.processed.ensure_indexes()
        for hook in self._start_hooks:
            await hook()
        self.publisher.start()
        if self.stall_gate is not None:
            _log.warning("testing.stall_hook_enabled", endpoints="/testing/stall, /testing/resume")
        if self.consumes:
            self._checks["consumer"] = self.consumer_health.check
            self.consumer_health.started()
        if self._routes:
            consumer = KafkaConsumer(
                consumer_config(self.settings),
                list(self._routes),
                hooks=self.consumer_health.client_hooks(),
            )
            dispatcher = EventDispatcher(
                service=self.service,
                routes=self._routes,
                dead_letters=self.publisher,
                processed=self.processed,
                policy=RetryPolicy.from_settings(self.settings.delivery),
                max_dead_letter_bytes=self.publisher.max_message_bytes,
                health=self.dead_letters,
                redelivery=self.redelivery,
                outages=self.outages,
            )
            self._events = EventConsumer(consumer, dispatcher, stall=self.stall_gate)
            self._consuming = asyncio.create_task(
                _supervise("events", self._events.run), name="events"
            )
        retention = timedelta(seconds=self.settings.idempotency.retention_s)
        loops = {
            "processed_events.sweep": lambda: self.processed.sweep_forever(
                retention, self.settings.idempotency.sweep_interval_s
            ),
            **self._loops,
        }
        self._running = [
            asyncio.create_task(_supervise(name, factory), name=name)
            for name, factory in loops.items()
        ]
        _log.info("service.started", service=self.service, topics=sorted(self._routes))

    async def stop(self) -> None:
        """Stop consuming (in-flight handlers finish and commit), stop the loops, say which
        work this instance still holds, then close the clients, the service's own last."""
        try:
            if self.stall_gate is not None:
                self.stall_gate.resume()  # a stalled handler would hold the shutdown
            await self._stop_consuming()
            for task in self._running:
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            self._running = []
            await self._announce_stopping()
            await self.publisher.close()
            await self.mongo.close()
        finally:
            for hook in self._stop_hooks:
                try:
                    await hook()
                except Exception as exc:  # the others still get closed
                    _log.error("service.stop_hook_failed", error=f"{type(exc).__name__}: {exc}")
        _log.info("service.stopped", service=self.service)

    async def _stop_consuming(self) -> None:
        """Let the message in hand finish and commit, for up to the shutdown timeout."""
        if self._events is None or self._consuming is None:
            return
        self._events.stop()
        try:
            await asyncio.wait_for(self._consuming, self.settings.shutdown_timeout_s)
        except TimeoutError:
            _log.warning("consumer.stop_timed_out", timeout_s=self.settings.shutdown_timeout_s)
        finally:
            self._events = self._consuming = None

    async def _announce_stopping(self) -> None:
        try:
            in_flight = tuple(await self._in_flight())
            stopping = ServiceStopping(
                service=self.service, instance=self.settings.instance_id, in_flight=in_flight
            )
            await asyncio.wait_for(self.emit(stopping), _STOPPING_PUBLISH_TIMEOUT_S)
        except Exception as exc:
            # Shutdown goes on: the janitor also notices stale runs without this event.
            _log.error("service.stopping_not_published", error=f"{type(exc).__name__}: {exc}")
        else:
            _log.info("service.stopping_published", in_flight=len(in_flight))

    def _catalog_topics(self) -> list[catalog.TopicSpec]:
        prefix = self.settings.kafka.topic_prefix
        names = {route.removeprefix(prefix) for route in self._routes}
        names.add(ServiceStopping.EVENT_TYPE)
        names.update(spec.name for spec in catalog.produced_by(self.service))
        # Topics outside the catalog (tests, ad-hoc tools) are provisioned by whoever owns them.
        return [spec for spec in catalog.TOPICS if spec.name in names]

    async def _ping_mongo(self) -> None:
        await self.db.command("ping")

    def _require_not_started(self) -> None:
        if self._started:
            raise RuntimeError("register handlers and loops before the service starts")


async def _supervise(name: str, factory: LoopFactory) -> None:
    while True:
        try:
            await factory()
        except Exception:
            _log.exception("loop.crashed", loop=name, restart_in_s=_RESTART_DELAY_S)
            await asyncio.sleep(_RESTART_DELAY_S)
        else:
            _log.info("loop.finished", loop=name)
            return
