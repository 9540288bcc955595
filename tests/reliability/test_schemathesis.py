"""schemathesis fuzzes a live ``annals serve`` on PostgreSQL from its own OpenAPI document,
with every check: no 5xx, statuses, content types, headers and bodies as documented,
invalid input refused, valid input accepted (bar the rules the document says JSON Schema
cannot state: tests/reliability/schemathesis.toml), undocumented methods refused."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN
from tests.reliability.conftest import ServeFactory, event

CONFIG = Path(__file__).with_name("schemathesis.toml")
#: Examples per operation and phase: about 40 s on the 2-core CI machine.
MAX_EXAMPLES = int(os.environ.get("ANNALS_SCHEMATHESIS_EXAMPLES", "100"))
#: Fixed, so that a failure in CI reproduces; set the variable to explore other inputs.
SEED = os.environ.get("ANNALS_SCHEMATHESIS_SEED", "20261124")


def schemathesis_command() -> list[str]:
    found = shutil.which("st") or str(Path(sys.executable).with_name("st"))
    if not Path(found).exists():
        pytest.fail("schemathesis is not installed (pip install -e '.[test]')")
    return [found]


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.backends("postgresql")
def test_schemathesis_finds_nothing(serve: ServeFactory, tmp_path: Path) -> None:
    server = serve()
    seed = [
        event("fuzz-1", instance_id="vm-1", memory_mb=512),
        event("fuzz-2", event_type="compute.instance.delete.end", instance_id="vm-1"),
    ]
    assert httpx.post(f"{server.url}/v2/events", json=seed, headers=ADMIN).status_code == 201
    identity = [f"--header={name}: {value}" for name, value in ADMIN.items()]
    result = subprocess.run(
        [
            *schemathesis_command(),
            "--no-color",
            f"--config-file={CONFIG}",
            "run",
            f"{server.url}/v2/openapi.json",
            "--checks=all",
            f"--max-examples={MAX_EXAMPLES}",
            f"--seed={SEED}",
            "--request-timeout=10",
            *identity,
        ],
        cwd=tmp_path,  # its example database (.hypothesis) stays out of the tree
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "No issues found" in output, output[-3000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    tested = re.search(r"Tested: (\d+)", output)
    assert selected and tested, output[-3000:]
    # Every operation of the document was selected and reached.
    assert selected[1] == selected[2] == tested[1], output[-3000:]
    log = server.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert " status=5" not in log, [line for line in log.splitlines() if " status=5" in line]
