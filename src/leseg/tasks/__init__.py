"""Tasks behind the entry points: ``train(cfg)`` (train.py) and ``evaluate(cfg)`` (eval.py)."""
