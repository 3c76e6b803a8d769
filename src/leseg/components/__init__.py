"""leseg.components."""
