import sys

from gvstore.cli import main

sys.exit(main())
