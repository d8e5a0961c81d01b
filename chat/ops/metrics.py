"""The server's Prometheus metrics, served at ``GET /metrics`` (chat/web/metrics.py).

Everything is counted in this one module, so another module only calls a
function here:

- ``refused(reason, transport)``: a request or frame refused by a rate limit
  (``reason="rate_limited"``) or for overload (``"overloaded"``,
  ``"unavailable"``); HTTP answers and WebSocket error frames with those codes
  are counted already by the code that sends them (``refused_error``).
- ``message_stored()``, ``message_delivered()``, ``batch(writer, size)``.
- ``watch(ctx, hub)``: the application whose pool, broker and sockets the
  gauges read at scrape time.

No label ever holds a user or room id: routes are templates (``/api/profile/{id}``).
"""

from __future__ import annotations

import re
import weakref
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from chat.context import Context
    from chat.realtime.hub import Hub

from chat.api.schemas import PATH_ID

# No *_created series: they double the output and nothing here needs them.
disable_created_metrics()

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REFUSALS = ("rate_limited", "overloaded", "unavailable")

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "chat_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "chat_http_request_duration_seconds",
    "Time from a request's headers to its answer, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
MESSAGES_STORED = Counter(
    "chat_messages_stored",
    "Messages stored (a repeated clientMsgId not counted again).",
    registry=REGISTRY,
)
MESSAGES_DELIVERED = Counter(
    "chat_messages_delivered", "Message frames handed to WebSockets.", registry=REGISTRY
)
REFUSED = Counter(
    "chat_refusals",
    "Requests and frames refused by a rate limit (rate_limited) or for overload "
    "(overloaded, unavailable).",
    ["reason", "transport"],
    registry=REGISTRY,
)
ACCEPT_PAUSES = Counter(
    "chat_accept_pauses",
    "Times the server stopped accepting connections for a moment: out of file "
    "descriptors or memory (new connections wait in the backlog meanwhile).",
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "chat_write_batch_size",
    "Items written in one transaction by a group-commit writer.",
    ["writer"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=REGISTRY,
)

_http: dict[tuple[str, str, int], tuple[Any, Any]] = {}
_refused: dict[tuple[str, str], Any] = {}
_batch: dict[str, Any] = {}
_stored = MESSAGES_STORED
_delivered = MESSAGES_DELIVERED


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request (its labelled children cached: this runs per request)."""
    key = (method, route, status)
    children = _http.get(key)
    if children is None:
        labels = (method, route, str(status))
        children = _http[key] = (HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
    children[0].inc()
    children[1].observe(seconds)


def refused(reason: str, transport: str) -> None:
    """A refusal by a rate limit or for overload; ``transport`` is http or websocket."""
    child = _refused.get((reason, transport))
    if child is None:  # looking a child up by its labels costs more than counting
        child = _refused[(reason, transport)] = REFUSED.labels(reason, transport)
    child.inc()


def refused_error(code: str, transport: str) -> None:
    """Count an error answer if its code is a refusal (called where errors are sent)."""
    if code in REFUSALS:
        refused(code, transport)


def accept_paused() -> None:
    ACCEPT_PAUSES.inc()


def message_stored(count: int = 1) -> None:
    _stored.inc(count)


def message_delivered() -> None:
    _delivered.inc()


def batch(writer: str, size: int) -> None:
    child = _batch.get(writer)
    if child is None:
        child = _batch[writer] = BATCH_SIZE.labels(writer)
    child.observe(size)


# --- route templates ------------------------------------------------------------------

_GROUP = re.compile(r"\((?:[^()]*[+*][^()]*)\)")
_routes: dict[type, str] = {}


def template(pattern: str) -> str:
    """A route pattern as a label: ids as ``{id}``, other open-ended groups as ``{}``."""
    text = pattern.removesuffix("$").replace(PATH_ID, "{id}")
    return _GROUP.sub("{}", text).replace("\\.", ".")


def route_of(handler: Any) -> str:
    """The route template that matched ``handler``'s request ("unmatched" for none)."""
    kind = type(handler)
    route = _routes.get(kind)
    if route is None:
        route = "unmatched"
        for rule in handler.application.wildcard_router.rules:
            if rule.target is kind:
                route = template(rule.matcher.regex.pattern)
                break
        _routes[kind] = route
    return route


# --- gauges read at scrape time ---------------------------------------------------------


class _State:
    """Reads the watched application's sockets, database pools and broker."""

    def __init__(self) -> None:
        self.ctx: Any = None
        self.hub: Any = None

    def collect(self) -> Any:
        ctx = self.ctx() if self.ctx is not None else None
        hub = self.hub() if self.hub is not None else None
        if hub is not None:
            sockets = GaugeMetricFamily("chat_websockets_open", "WebSockets open now.")
            sockets.add_metric([], hub.open_sockets())
            yield sockets
        if ctx is None:
            return
        in_use = GaugeMetricFamily(
            "chat_db_pool_connections_in_use",
            "Database connections lent out, by pool (reads: single statements; "
            "writes: transactions).",
            labels=["pool"],
        )
        waiting = GaugeMetricFamily(
            "chat_db_pool_waiting",
            "Callers waiting for a database connection, by pool.",
            labels=["pool"],
        )
        limit = GaugeMetricFamily(
            "chat_db_pool_connections_max", "Most connections of each pool.", labels=["pool"]
        )
        for name, stats in ctx.db.pool_stats().items():
            in_use.add_metric([name], stats["in_use"])
            waiting.add_metric([name], stats["waiting"])
            limit.add_metric([name], stats["max"])
        yield from (in_use, waiting, limit)
        delay = GaugeMetricFamily(
            "chat_queue_delay_seconds",
            "Queueing delay (arrival to start of work) of the last item started, by queue "
            "(message and join lanes, database pools); past CHAT_QUEUE_DELAY_MS new work is "
            "refused.",
            labels=["queue"],
        )
        for writer in ("message", "join"):
            lanes = getattr(ctx, f"{writer}_writer").lanes
            for i, lane in enumerate(lanes):
                name = f"{writer}_slow" if i == len(lanes) - 1 else f"{writer}_{i}"
                delay.add_metric([name], lane.delay.last)
        for pool in ctx.db.pools:
            delay.add_metric([f"db_{pool.name}"], pool.delay.last)
        yield delay
        up = GaugeMetricFamily(
            "chat_db_up", "1 while the database answers; 0 while calls are answered 503."
        )
        up.add_metric([], 1 if ctx.db.health.up else 0)
        yield up
        outages = CounterMetricFamily(
            "chat_db_outages", "Times the database stopped answering since start-up."
        )
        outages.add_metric([], ctx.db.health.outages)
        yield outages
        broker = GaugeMetricFamily(
            "chat_broker_state",
            "1 for the broker's state: ok, down (Redis unreachable), not_configured (no Redis).",
            labels=["state"],
        )
        if not ctx.settings.redis_url:
            state = "not_configured"
        else:
            state = "ok" if ctx.broker.healthy else "down"
        for name in ("ok", "down", "not_configured"):
            broker.add_metric([name], 1 if name == state else 0)
        yield broker


_state = _State()
REGISTRY.register(_state)


def watch(ctx: Context, hub: Hub) -> None:
    """Report on this application's pools, broker and sockets (the latest one made)."""
    _state.ctx = weakref.ref(ctx)
    _state.hub = weakref.ref(hub)


def render() -> bytes:
    return generate_latest(REGISTRY)
