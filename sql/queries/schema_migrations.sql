-- name: schema_version
-- The latest schema file applied (GET /api/health); no lock.
SELECT MAX(version) AS version FROM schema_migrations;
