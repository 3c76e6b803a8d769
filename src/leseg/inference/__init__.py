"""leseg.inference."""
