import sys

from entrypoint.controller.cli import main

sys.exit(main(sys.argv[1:]))
