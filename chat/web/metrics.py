"""GET /metrics: the Prometheus text format (chat/ops/metrics.py says what is in it).

``CHAT_METRICS`` says who may read it: ``on`` anyone who can reach the
server, ``off`` nobody (404, as any unknown path), or a list of addresses and
networks (403 for others; behind a proxy, with CHAT_BEHIND_PROXY, the address
is the client's as the proxy reports it).
"""

import ipaddress

from chat import errors
from chat.ops import metrics
from chat.web.base import ApiHandler


class MetricsHandler(ApiHandler):
    auth_required = False
    cors = False

    async def get(self) -> None:
        allowed = self.ctx.settings.metrics
        if not allowed:
            raise errors.NotFound(f"No such path: {self.request.path}")
        try:
            address = ipaddress.ip_address(self.request.remote_ip or "")
        except ValueError:
            address = None
        if address is None or not any(address in network for network in allowed):
            raise errors.Forbidden("This address may not read the metrics.")
        self.set_header("Content-Type", metrics.CONTENT_TYPE)
        self.finish(metrics.render())
