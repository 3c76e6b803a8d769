"""``python -m leseg.stages <stage> [overrides]``: see :mod:`leseg.stages.entry`."""

from leseg.stages.entry import main

if __name__ == "__main__":
    main()
