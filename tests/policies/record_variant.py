"""Runs tests/e2e/unsafe_program with one variant under wire-recording mocks, in its own process
(stack transformations are process-global), and prints what it sent to the engine as JSON:
{"resources": [[type, name, inputs], ...], "hosts": {name: explicit provider's name}}.

    python tests/policies/record_variant.py VARIANT STACK_FILE
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pulumi
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT), str(HERE), str(ROOT / "policies")]

from test_policy_program import Sent, wire_monitor  # noqa: E402

from tests.support.mocks import RecordingMocks, issue_test_certificates  # noqa: E402


def main(variant: str, stack_file: str) -> None:
    document = yaml.safe_load((ROOT / stack_file).read_text())["config"]
    config = {k: v if isinstance(v, str) else json.dumps(v) for k, v in document.items()}
    if variant == "retention-7-days":
        config["medisys:backups"] = json.dumps({"retention_days": 7, "full_interval_hours": 24, "diff_interval_hours": 4})
    if variant == "offsite-retention-7-days":
        config["medisys:backups"] = json.dumps({"retention_days": 30, "full_interval_hours": 24, "diff_interval_hours": 4,
                                                "offsite": {"retention_days": 7}})
    certs = issue_test_certificates("app.medisys.example", ["app.medisys.example"], [])
    config |= {"test:variant": variant, "medisys:lb_certificate": certs["cert"], "medisys:lb_private_key": certs["key"]}
    mocks = RecordingMocks()
    sent: Sent = []
    hosts: dict[str, str] = {}
    pulumi.runtime.set_mocks(mocks, project="medisys-platform", stack="prod", preview=False, monitor=wire_monitor(mocks, sent, hosts))
    pulumi.runtime.set_all_config(config)

    @pulumi.runtime.test
    def program() -> None:
        runpy.run_path(str(ROOT / "tests" / "e2e" / "unsafe_program" / "__main__.py"))

    program()
    json.dump({"resources": sent, "hosts": hosts}, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:3])
