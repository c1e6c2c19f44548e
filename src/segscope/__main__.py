"""``python -m segscope`` (and ``torchrun ... -m segscope train ...``): the command line."""

import sys

from segscope.cli.main import main

sys.exit(main())
