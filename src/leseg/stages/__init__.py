"""leseg.stages."""
