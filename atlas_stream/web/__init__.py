"""Web endpoints (stats, sources, events, schemas, metrics) and the dashboard's static assets."""
