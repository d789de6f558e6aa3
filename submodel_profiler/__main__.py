"""`python -m submodel_profiler` entry point.

It ends with `os._exit` once the report is written and stdout and stderr are flushed: tearing
TensorFlow down (thousands of traced functions and graphs) would add about a second to every
run and change nothing. `main()` itself returns normally (the API, the tests, the
`submodel-profiler` console script).
"""

import os
import sys

from submodel_profiler.cli import main

code = main()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
