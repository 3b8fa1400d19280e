"""Rate limits: token buckets (``buckets``: in this process; ``redis_buckets``: shared by
every worker), where they count (``backend``: Redis when it is configured), the login and
registration throttles (``throttle``) and the per-user limits (``users``)."""
