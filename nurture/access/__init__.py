"""Who may do what: API keys, and the signed links (unsubscribe, rep inbox)."""
