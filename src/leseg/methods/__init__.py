"""Methods: one LightningModule per method, composing models and components.

A method module owns the training logic only; it never reads files itself (data comes from the
DataModules, artefacts from ``leseg.stages``).
"""
