"""The scheduler and its policies: concurrency, per-host limits, retries, order."""
