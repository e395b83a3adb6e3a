"""Process plumbing: logging, exit, bytecode caching."""
