"""schemathesis against kioskd's own OpenAPI description, over the loopback API with the panel token, on the
simulated van: whatever a request holds, no 500, and every 4xx answers with a message (French and English, or at
least what was wrong). ``make soak`` runs more examples (KIOSK_FUZZ_EXAMPLES)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from kioskd.profile import SIM_PROFILE
from tests.conftest import mounts_under
from tests.integration.daemon_process import Daemon, start_daemon

EXAMPLES = max(5, int(os.environ.get("KIOSK_FUZZ_EXAMPLES", "200")) // 20)  # per operation


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    folder = tmp_path_factory.mktemp("fuzz")
    profile = folder / "profile.toml"  # quick simulated pages: the fuzzer scans many times
    profile.write_text(SIM_PROFILE.read_text().replace("page_seconds = 4.0", "page_seconds = 0.05"))
    d = start_daemon(folder, "--profile", str(profile))
    try:
        d.wait_for("READY=1")
        d.ctl("start")
        d.ctl("next")  # a session: the session commands (print, scan) run for real, not only their refusals
        yield d
    finally:
        d.kill()
        for point in sorted(mounts_under(folder), key=len, reverse=True):
            subprocess.run(["umount", "--lazy", point], check=False)


def test_no_request_makes_the_api_fail_or_answer_without_a_message(daemon: Daemon) -> None:
    auth = {"Authorization": f"Bearer {(daemon.runtime / 'panel-token').read_text().strip()}"}
    port = json.loads((daemon.runtime / "api.json").read_text())["port"]
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json", headers=auth)
    # the event stream never ends, and the doctor's button test waits for a human by design
    schema = schema.exclude(path="/events").exclude(path="/doctor")
    statuses: dict[str, set[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, "the OpenAPI description lists every endpoint"
    for operation in operations:
        if daemon.status()["station"]["state"] != "in_session":  # type: ignore[index]
            daemon.ctl("start", check=False)  # an earlier end-of-day: every operation meets a citizen session
            daemon.ctl("next", check=False)

        # valid requests and invalid ones (wrong types, missing or extra fields, bad path parameters)
        modes = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=modes.flatmap(lambda mode, op=operation: op.as_strategy(generation_mode=mode)))
        def check(case: Any) -> None:
            response = case.call(headers=auth, timeout=30)
            statuses.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
            assert response.status_code < 500 or response.status_code == 503, (case.path, response.text[:300])
            if response.status_code >= 400:
                error = response.json().get("error", {})
                assert error.get("fr") or error.get("what"), (case.path, response.text[:300])
            assert daemon.proc.poll() is None, "the daemon must survive every request"

        check()
    print({label: sorted(codes) for label, codes in statuses.items()})
