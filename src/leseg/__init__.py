"""leseg."""
