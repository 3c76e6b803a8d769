"""leseg.methods."""
