"""The live dashboard: what a worker samples, the figures over the last hour, the delivery feed, the page."""
