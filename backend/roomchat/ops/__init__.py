"""Running it: metrics, readiness, logs, security headers and allowed origins."""
