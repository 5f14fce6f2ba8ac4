import sys

from gvstore.cli.app import main

sys.exit(main())
