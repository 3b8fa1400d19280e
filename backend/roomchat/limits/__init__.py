"""Rate limits: token buckets (``buckets``: in this process; ``redis_buckets``: shared by
every worker), where they count (``backend``: Redis when it is configured), the login and
registration throttles (``throttle``), the per-user limits (``users``) and what a user is
owed for time the server did not read their sockets (``catchup``)."""
