"""leseg.models."""
