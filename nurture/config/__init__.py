"""Loading and checking the rules and templates marketers write; settings from the environment."""
