"""leseg.metrics."""
