"""Run the edge-emotion command line: ``python -m edge``."""

from edge.cli import main

raise SystemExit(main())
