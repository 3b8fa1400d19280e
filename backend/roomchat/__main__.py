import sys

from roomchat.cli import main

sys.exit(main())
