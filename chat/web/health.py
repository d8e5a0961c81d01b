"""GET /api/health: 200 when the database answers, 503 otherwise (within the pool's deadlines).

``checks.broker`` is "down" while Redis cannot be reached: the server still
stores and answers then, so it stays in the load balancer's rotation; it is
"not_configured" when there is no Redis (one process, fan-out within it).
``version`` is the server's release, ``schemaVersion`` the latest schema file
applied to the database (null while it does not answer); the one query that
reads it is also the database check.
"""

import logging

import chat
from chat.web.base import ApiHandler

log = logging.getLogger("chat.health")


class HealthHandler(ApiHandler):
    auth_required = False

    async def get(self) -> None:
        if not self.ctx.settings.redis_url:
            broker = "not_configured"
        else:
            broker = "ok" if self.ctx.broker.healthy else "down"
        checks = {"database": "ok", "broker": broker}
        schema_version = None
        try:
            row = await self.ctx.db.fetch_one("schema_version")
            if row is None:
                raise LookupError("no schema version recorded")
            schema_version = row["version"]
        except Exception as exc:
            # The pool logs the outage once; a probe every few seconds need not.
            log.debug("health: database does not answer: %s", exc)
            checks["database"] = "down"
        status = "ok" if checks["database"] == "ok" else "unavailable"
        self.reply(
            200 if status == "ok" else 503,
            {
                "status": status,
                "checks": checks,
                "version": chat.__version__,
                "schemaVersion": schema_version,
            },
        )
