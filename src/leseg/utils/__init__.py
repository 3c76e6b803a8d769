"""leseg.utils."""
