"""``python -m project.backup``: runs the restore-keys command line of ``restore_keys``."""

import sys

from project.backup.restore_keys import main

if __name__ == "__main__":
    sys.exit(main())
