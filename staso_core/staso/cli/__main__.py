"""``python -m staso.cli``: the ``staso`` command."""

from . import main

main()
