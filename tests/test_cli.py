"""The CLI lists every command, and commands that need no torch do not import it."""

import subprocess
import sys

from z2h.cli import COMMANDS


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "z2h", "--help"], capture_output=True, text=True, check=True)
    for name in COMMANDS:
        assert name in out.stdout


def test_bench_help_does_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "from z2h.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['bench', '--help'])\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
