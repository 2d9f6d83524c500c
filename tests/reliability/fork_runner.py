"""Runs src/component.py as ``__main__`` in a freshly forked process per request, with the imports paid once.

A component process costs ~1 s, mostly imports (boto3, keboola.component ...); the fuzzer runs hundreds. This
worker imports the component's modules once, then for every request line ``{"env", "stdout", "stderr"}`` on
stdin forks: the child gets exactly that environment, its stdout/stderr redirected to the given files, and runs
``src/component.py`` with runpy as ``python src/component.py`` would; the parent answers ``{"rc": <exit code>}``.
An uncaught exception exits 1 with a traceback, as in a real interpreter.
"""

import json
import os
import runpy
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMPONENT = str(REPO / "src" / "component.py")
sys.path.insert(0, str(REPO / "src"))
import component  # noqa: F401 - pre-import everything the component needs

for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(REPO)
            os.environ.clear()
            os.environ.update(request["env"])
            for fd, name in ((1, "stdout"), (2, "stderr")):
                target = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(target, fd)
                os.close(target)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.argv = [COMPONENT]
            try:
                runpy.run_path(COMPONENT, run_name="__main__")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
                traceback.print_exc()
                code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
