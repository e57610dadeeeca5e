"""``python -m kioskd.cli``: the same as the ``kioskctl`` script."""

from kioskd.cli import main

main()
