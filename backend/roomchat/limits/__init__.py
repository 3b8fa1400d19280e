"""Rate limits: token buckets in memory and in Redis, login and registration throttles,
per-user limits."""
