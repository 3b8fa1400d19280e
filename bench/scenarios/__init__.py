"""The scenarios, each ``async run(ctx) -> dict`` of figures, run in the load process."""
