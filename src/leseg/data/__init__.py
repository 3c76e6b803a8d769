"""leseg.data."""
