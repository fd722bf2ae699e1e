"""``python -m atheria_core.server`` (the same as ``atheria-serve``)."""
import sys

from .cli import main

sys.exit(main())
