"""leseg.models.heads."""
