"""`python -m submodel_profiler` entry point."""

from submodel_profiler.cli import main

raise SystemExit(main())
