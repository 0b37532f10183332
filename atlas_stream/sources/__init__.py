"""Sources that feed the raw topics: gateway, pollers (one module each)."""
