"""Building blocks shared by methods: losses, EMA teacher, mixing, pseudo-label refinement, ...

Plain tensor functions and small modules; they know neither Lightning nor Hydra.
"""
