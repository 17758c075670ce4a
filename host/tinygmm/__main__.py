"""`python -m tinygmm`: the same as the `tinygmm` command."""
import sys

from .cli import main

sys.exit(main())
