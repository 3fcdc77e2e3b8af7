"""`python -m azr_jax.cli COMMAND` = `azr-jax COMMAND`."""

import sys

from azr_jax.cli import main

sys.exit(main())
