"""Process plumbing: logging, metrics, tracing, exit."""
