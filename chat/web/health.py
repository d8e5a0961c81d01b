"""GET /api/health: 200 when the database answers, 503 otherwise.

``checks.broker`` is "down" while Redis cannot be reached: the server still
stores and answers then, so it stays in the load balancer's rotation.
"""

import logging

from chat.web.base import ApiHandler

log = logging.getLogger("chat.health")


class HealthHandler(ApiHandler):
    auth_required = False

    async def get(self):
        checks = {"database": "ok", "broker": "ok" if self.ctx.broker.healthy else "down"}
        try:
            await self.ctx.db.ping()
        except Exception as exc:
            log.warning("health: database does not answer: %s", exc)
            checks["database"] = "down"
        status = "ok" if checks["database"] == "ok" else "unavailable"
        self.reply(200 if status == "ok" else 503, {"status": status, "checks": checks})
