import sys

from ovms_client.cli import main

sys.exit(main())
