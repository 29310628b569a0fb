"""The GitHub workflows: actionlint-clean (with shellcheck on every run: block when it is installed),
and shaped as the platform needs: previews of staging and prod with the policy pack, a prod
deploy behind an approval, and a prod preview that cannot pass over a policy that did not run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
SCRIPTS = ROOT / ".github" / "scripts"
PULUMI_ACTION = "pulumi/actions@v6"
ALLOWED_ACTIONS = {"actions/checkout@v4", "actions/setup-python@v5", "actions/upload-artifact@v4", PULUMI_ACTION}
STACKS = ["staging", "prod"]


def workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if s.get("uses") == action]


def pulumi_step(job: dict[str, Any], command: str) -> dict[str, Any]:
    (step,) = [s for s in steps_using(job, PULUMI_ACTION) if s["with"]["command"] == command]
    return step


def index_of(job: dict[str, Any], step: dict[str, Any]) -> int:
    return job["steps"].index(step)


def run_actionlint(actionlint: str, files: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint, "-no-color", "-oneline", *map(str, files)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# --- actionlint -------------------------------------------------------------------------------------


def test_workflows_pass_actionlint(actionlint: str) -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} >= {"ci.yml", "preview.yml", "deploy.yml"}
    done = run_actionlint(actionlint, files, ROOT)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_actionlint_reports_a_broken_workflow(actionlint: str, tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  preview:\n"
        "    runs-on: ubuntu-latest\n"
        "    needs: build\n"
        "    steps:\n"
        "      - uses: pulumi/actions@v6\n"
        "        with:\n"
        "          command: preview\n"
        "          stack-name: prod\n"
        "          policy-packs: policies\n"
        "      - run: echo ${{ steps.nope.outputs.output }}\n"
    )
    done = run_actionlint(actionlint, [broken], tmp_path)
    assert done.returncode == 1
    assert 'input "policy-packs" is not defined in action "pulumi/actions@v6"' in done.stdout
    assert '"build"' in done.stdout  # the job it needs does not exist
    assert 'property "nope" is not defined' in done.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed: actionlint checks run: blocks only with it")
def test_actionlint_reports_shellcheck_findings_in_run_blocks(actionlint: str, tmp_path: Path) -> None:
    sloppy = tmp_path / "sloppy.yml"
    sloppy.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: rm -rf $TARGET/build\n")
    done = run_actionlint(actionlint, [sloppy], tmp_path)
    assert done.returncode == 1
    assert "shellcheck reported issue" in done.stdout and "SC2086" in done.stdout


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_workflow_scripts_are_shellcheck_clean() -> None:
    scripts = [SCRIPTS / "stack-access", SCRIPTS / "check-preview-policies"]
    done = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, "")


def test_actions_are_pinned_to_known_major_versions() -> None:
    uses = set()
    for path in [*WORKFLOWS.glob("*.yml"), *(ROOT / ".github" / "actions").glob("*/action.yml")]:
        data = yaml.safe_load(path.read_text())
        jobs = data.get("jobs", {}).values() if "jobs" in data else [data["runs"]]
        uses |= {s["uses"] for job in jobs for s in job["steps"] if "uses" in s}
    remote = {u for u in uses if not u.startswith("./")}
    assert remote <= ALLOWED_ACTIONS, remote - ALLOWED_ACTIONS
    for local in uses - remote:
        assert (ROOT / local / "action.yml").is_file(), local


# --- preview ----------------------------------------------------------------------------------------


def test_preview_runs_on_pull_requests_for_staging_and_prod() -> None:
    wf = workflow("preview.yml")
    assert "pull_request" in wf["on"]
    assert wf["permissions"] == {"contents": "read", "pull-requests": "write"}
    (job,) = wf["jobs"].values()
    assert job["strategy"]["matrix"]["stack"] == STACKS
    assert job["strategy"]["fail-fast"] is False
    assert "${{ matrix.stack }}" in job["concurrency"]["group"]


def test_preview_applies_the_policy_pack_with_each_stacks_config_and_comments() -> None:
    (job,) = workflow("preview.yml")["jobs"].values()
    step = pulumi_step(job, "preview")
    assert step["with"]["stack-name"] == "${{ matrix.stack }}"
    assert step["with"]["policyPacks"] == "policies"
    assert step["with"]["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"
    assert step["with"]["comment-on-pr"] is True
    assert step["with"]["edit-pr-comment"] is True
    assert step["with"]["diff"] is True
    for stack in STACKS:
        assert (ROOT / "policies" / "config" / f"{stack}.json").is_file()
        assert (ROOT / f"Pulumi.{stack}.yaml").is_file()


def test_python_dependencies_are_installed_before_every_pulumi_step() -> None:
    action = yaml.safe_load((ROOT / ".github" / "actions" / "python-deps" / "action.yml").read_text())
    script = "\n".join(s.get("run", "") for s in action["runs"]["steps"])
    assert "-r requirements.txt" in script and "policies/venv/bin/pip install" in script and "-r policies/requirements.txt" in script
    for name in ("preview.yml", "deploy.yml", "drift.yml"):
        for job in workflow(name)["jobs"].values():
            deps = [i for i, s in enumerate(job["steps"]) if s.get("uses") == "./.github/actions/python-deps"]
            first_pulumi = min(index_of(job, s) for s in steps_using(job, PULUMI_ACTION))
            assert deps and deps[0] < first_pulumi, (name, job.get("name"))


def test_prod_preview_fails_on_a_policy_that_could_not_run() -> None:
    (job,) = workflow("preview.yml")["jobs"].values()
    preview = pulumi_step(job, "preview")
    guards = [s for s in job["steps"] if "check-preview-policies" in s.get("run", "")]
    assert len(guards) == 1
    guard = guards[0]
    assert index_of(job, guard) > index_of(job, preview)
    assert guard["env"]["PREVIEW_OUTPUT"] == f"${{{{ steps.{preview['id']}.outputs.output }}}}"
    assert "if" not in guard  # runs for both stacks: fails for prod, warns for staging
    assert "can't run policy" in (SCRIPTS / "check-preview-policies").read_text()


def test_credentials_are_removed_even_when_a_step_fails() -> None:
    for name in ("preview.yml", "deploy.yml", "drift.yml"):
        for job in workflow(name)["jobs"].values():
            opens = [s for s in job["steps"] if "stack-access open" in s.get("run", "")]
            last = job["steps"][-1]
            assert opens and "stack-access close" in last["run"] and last["if"] == "always()", (name, job.get("name"))


def test_preview_attaches_the_compliance_report_and_comments_its_summary() -> None:
    (job,) = workflow("preview.yml")["jobs"].values()
    preview = pulumi_step(job, "preview")
    (report,) = [s for s in job["steps"] if "scripts/compliance-report" in s.get("run", "")]
    assert '--stack "$STACK"' in report["run"] and "--target stack" in report["run"]
    (upload,) = steps_using(job, "actions/upload-artifact@v4")
    (comment,) = [s for s in job["steps"] if "compliance-comment" in s.get("run", "")]
    assert index_of(job, preview) < index_of(job, report) < index_of(job, upload) < index_of(job, comment) < len(job["steps"]) - 1
    # They run after a failed preview too (a violation is when the report matters), not after a cancel.
    for step in (report, upload, comment):
        assert "!cancelled()" in step["if"], step["name"]
    assert upload["with"]["name"] == "compliance-${{ matrix.stack }}"
    assert set(upload["with"]["path"].splitlines()) == {"reports/compliance-${{ matrix.stack }}.json", "reports/compliance-${{ matrix.stack }}.md"}
    assert comment["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    assert comment["env"]["PR_NUMBER"] == "${{ github.event.pull_request.number }}"


def write_report(directory: Path, statuses: dict[str, str]) -> None:
    rows = [{"control": c, "status": s} for c, s in statuses.items()]
    table = ["| control | title | status | policies | passed | failed | not judged |", "|---|---|---|---|---|---|---|"]
    table += [f"| {c} | t | **{s}** | 1 | 1 | 0 | 0 |" for c, s in statuses.items()]
    report = {"stack": "prod", "commit": "0123456789abcdef0123", "summary": rows,
              "policyPack": {"name": "medisys-platform-policies", "version": "0.1.0"}, "preview": {"succeeded": False}}
    (directory / "compliance-prod.json").write_text(json.dumps(report))
    (directory / "compliance-prod.md").write_text("# Compliance report\n\n- commit\n\n" + "\n".join(table) + "\n\n## HIPAA\n")


def test_compliance_comment_carries_the_summary_table_and_names_what_did_not_pass(tmp_path: Path) -> None:
    write_report(tmp_path, {"HIPAA 164.312(e)(1)": "passed", "CIS Docker v1.6.0 5.5": "failed"})
    done = subprocess.run([str(SCRIPTS / "compliance-comment"), "prod", "7", "--dry-run"], env={**os.environ, "MEDISYS_REPORT_DIR": str(tmp_path)},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "<!-- medisys-compliance-report:prod -->"
    assert "not passed: CIS Docker v1.6.0 5.5" in lines[1]
    assert "| CIS Docker v1.6.0 5.5 | t | **failed** | 1 | 1 | 0 | 0 |" in lines
    assert "v0.1.0" in done.stdout and "0123456789ab" in done.stdout and "## HIPAA" not in done.stdout


# --- deploy -----------------------------------------------------------------------------------------


def test_deploy_runs_on_main_and_by_hand() -> None:
    wf = workflow("deploy.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in wf["on"]
    assert wf["jobs"]["staging"]["if"] == "github.ref == 'refs/heads/main'"


def test_staging_deploys_with_refresh_and_its_policy_config() -> None:
    job = workflow("deploy.yml")["jobs"]["staging"]
    step = pulumi_step(job, "up")
    assert step["with"]["stack-name"] == "staging"
    assert step["with"]["policyPacks"] == "policies"
    assert step["with"]["policyPackConfigs"] == "policies/config/staging.json"
    assert step["with"]["refresh"] is True


def test_prod_deploy_needs_staging_and_the_production_approval() -> None:
    job = workflow("deploy.yml")["jobs"]["prod"]
    assert job["needs"] in ("staging", ["staging"])
    environment = job["environment"]
    assert (environment if isinstance(environment, str) else environment["name"]) == "production"


def test_prod_deploys_only_through_the_preview_gate() -> None:
    """No `pulumi up` of prod outside `make deploy`: scripts/deploy previews with prod's policy
    config, refuses on any violation, then runs `pulumi up --plan` of that preview."""
    job = workflow("deploy.yml")["jobs"]["prod"]
    assert [s for s in steps_using(job, PULUMI_ACTION) if "command" in s.get("with", {})] == []
    (install,) = steps_using(job, PULUMI_ACTION)
    (gate,) = [s for s in job["steps"] if "make deploy" in s.get("run", "")]
    assert gate["run"].strip() == "make deploy STACK=prod" and index_of(job, install) < index_of(job, gate)
    assert job["env"]["PULUMI_BACKEND_URL"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    target = (ROOT / "Makefile").read_text().split("\ndeploy:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/deploy --stack $(STACK) --refresh" in target and "bootstrap" not in target


def test_two_deploys_of_one_stack_never_overlap() -> None:
    jobs = workflow("deploy.yml")["jobs"]
    groups = {name: job["concurrency"] for name, job in jobs.items()}
    assert all(g["cancel-in-progress"] is False for g in groups.values())
    assert len({g["group"] for g in groups.values()}) == len(groups)


# --- drift ------------------------------------------------------------------------------------------


def test_drift_runs_on_a_schedule_and_by_hand_for_staging_and_prod() -> None:
    wf = workflow("drift.yml")
    assert wf["on"]["schedule"] and "workflow_dispatch" in wf["on"]
    assert wf["permissions"] == {"contents": "read"}
    (job,) = wf["jobs"].values()
    assert job["strategy"]["matrix"]["stack"] == STACKS and job["strategy"]["fail-fast"] is False


def test_drift_runs_the_make_drift_script_and_never_overlaps_a_deploy() -> None:
    (job,) = workflow("drift.yml")["jobs"].values()
    (check,) = [s for s in job["steps"] if "scripts/drift" in s.get("run", "")]
    assert '--stack "$STACK"' in check["run"] and job["env"]["STACK"] == "${{ matrix.stack }}"
    (install,) = steps_using(job, PULUMI_ACTION)
    assert "command" not in install["with"] and index_of(job, install) < index_of(job, check)
    assert job["env"]["PULUMI_BACKEND_URL"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert "scripts/drift --stack $(STACK)" in (ROOT / "Makefile").read_text()
    deploys = {job["concurrency"]["group"] for job in workflow("deploy.yml")["jobs"].values()}
    assert {job["concurrency"]["group"].replace("${{ matrix.stack }}", s) for s in STACKS} == deploys
    assert job["concurrency"]["cancel-in-progress"] is False


def run_drift(tmp_path: Path, preview: dict[str, Any] | None, code: int) -> subprocess.CompletedProcess[str]:
    """scripts/drift against a stand-in `pulumi` that prints this preview JSON and exits with code."""
    fake = tmp_path / "pulumi"
    payload = json.dumps(preview) if preview is not None else "error: could not reach the Docker host"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{payload}\nEOF\nexit {code}\n")
    fake.chmod(0o755)
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "drift"), "--stack", "prod"], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "GITHUB_ACTIONS": "true"}, check=False)


def test_drift_script_lists_each_drifted_resource(tmp_path: Path) -> None:
    urn = "urn:pulumi:prod::medisys-platform::medisys:platform:Cache$docker:index/container:Container::medisys-prod-redis-1"
    steps = [{"op": "same", "urn": urn.replace("redis-1", "redis-2")}, {"op": "refresh", "urn": urn},
             {"op": "replace", "urn": urn, "diffReasons": ["cpus", "memory"], "replaceReasons": ["cpus"]}]
    done = run_drift(tmp_path, {"steps": steps}, 255)
    assert done.returncode == 1
    assert "replace          medisys-prod-redis-1 (docker:index/container:Container): cpus (replaces), memory" in done.stdout
    assert "::error" in done.stdout and "redis-2" not in done.stdout


def test_drift_script_passes_a_clean_stack_and_fails_when_the_preview_cannot_run(tmp_path: Path) -> None:
    clean = run_drift(tmp_path, {"steps": [{"op": "same", "urn": "a::b::c"}]}, 0)
    assert (clean.returncode, "no drift" in clean.stdout) == (0, True)
    broken = run_drift(tmp_path, None, 255)
    assert broken.returncode == 2 and "could not reach the Docker host" in broken.stderr


def run_deploy(tmp_path: Path, preview_output: str, preview_code: int, stack: str = "prod") -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """scripts/deploy against a stand-in `pulumi` that logs each call; its preview prints
    preview_output and exits with preview_code (writing the --save-plan file), the rest succeed."""
    log = tmp_path / "calls"
    fake = tmp_path / "pulumi"
    (tmp_path / "preview.txt").write_text(preview_output)
    fake.write_text(f"""#!/usr/bin/env python3
import sys
open({str(log)!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "preview":
    print(open({str(tmp_path / "preview.txt")!r}).read())
    if "--save-plan" in sys.argv:
        open(sys.argv[sys.argv.index("--save-plan") + 1], "w").write("{{}}")
    sys.exit({preview_code})
""")
    fake.chmod(0o755)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "deploy"), "--stack", stack, "--refresh"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "GITHUB_ACTIONS": "true"})
    return done, log.read_text().splitlines() if log.exists() else []


MANDATORY_PREVIEW = """Policies:
    medisys-platform-policies@v0.0.1 (local: policies)
        - [mandatory] [severity: critical]  hardening-no-privileged  (docker:index:Container: medisys-prod-app-1)
          Container 'medisys-prod-app-1' (role app): runs privileged. Fix: remove privileged=True.
error: preview failed"""


def test_deploy_refuses_a_preview_with_a_mandatory_violation_before_any_up(tmp_path: Path) -> None:
    done, calls = run_deploy(tmp_path, MANDATORY_PREVIEW, 255)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "deploy refused, nothing was changed" in done.stderr and "::error title=deploy refused::" in done.stdout
    assert [c.split()[0] for c in calls] == ["refresh", "preview"]
    assert "--policy-pack-config" in calls[1] and "--save-plan" in calls[1]
    assert str(ROOT / "policies" / "config" / "prod.json") in calls[1]


def test_deploy_refuses_prod_when_a_policy_could_not_run(tmp_path: Path) -> None:
    for line in ("can't run policy 'x' from policy pack 'p@v1' during preview: string value at .user can't be known",
                 "Container 'a' (role app): cannot verify policy 'x' in this preview: `user` is unknown until the update runs"):
        done, calls = run_deploy(tmp_path, f"Policies:\n    - [advisory]  x\n      {line}\n", 0)
        assert done.returncode == 1 and "could not judge a value unknown in the preview" in done.stderr, done.stderr
        assert "up" not in [c.split()[0] for c in calls]
        (tmp_path / "calls").unlink()


def test_deploy_runs_up_of_exactly_the_previewed_plan(tmp_path: Path) -> None:
    done, calls = run_deploy(tmp_path, "Resources:\n    75 unchanged\n", 0)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [c.split()[0] for c in calls] == ["refresh", "preview", "up"]
    plan = calls[1].split("--save-plan ")[1].split()[0]
    assert f"--plan {plan}" in calls[2] and "--policy-pack-config" in calls[2]


def test_deploy_only_warns_outside_prod_on_advisory_findings(tmp_path: Path) -> None:
    done, calls = run_deploy(tmp_path, "Policies:\n    - [advisory]  x\n      cannot verify policy 'x' in this preview\n", 0, stack="staging")
    assert done.returncode == 0 and [c.split()[0] for c in calls] == ["refresh", "preview", "up"]


# --- ci ---------------------------------------------------------------------------------------------


def test_ci_runs_the_readme_test_command() -> None:
    wf = workflow("ci.yml")
    assert {"pull_request", "push"} <= set(wf["on"])
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest" and job["timeout-minutes"] == 90
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert any(r.startswith("sudo ") and r.endswith("bash .ci/run") for r in runs)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


# --- the scripts the workflows call -----------------------------------------------------------------


def guard(stack: str, output: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / "check-preview-policies"), stack],
        env={**os.environ, "PREVIEW_OUTPUT": output},
        capture_output=True,
        text=True,
        check=False,
    )


SKIPPED_LINE = (
    "    can't run policy 'hardening-image-pinned' from policy pack 'medisys-platform-policies@v0.1.0' during preview: image is unknown"
)


def test_guard_fails_a_prod_preview_with_a_policy_that_could_not_run() -> None:
    done = guard("prod", f"Previewing update (prod)\nPolicies:\n{SKIPPED_LINE}\nResources: 40 to create\n")
    assert done.returncode == 1
    assert "::error" in done.stdout and "hardening-image-pinned" in done.stdout


def test_guard_warns_for_staging() -> None:
    done = guard("staging", f"Policies:\n{SKIPPED_LINE}\n")
    assert done.returncode == 0
    assert done.stdout.startswith("::warning") and "hardening-image-pinned" in done.stdout


def test_guard_passes_a_preview_where_every_policy_ran() -> None:
    done = guard("prod", "Previewing update (prod)\nResources:\n    40 to create\n")
    assert done.returncode == 0, done.stdout


def test_guard_fails_when_there_is_no_output_to_check() -> None:
    assert guard("prod", "  \n").returncode == 1


def stack_settings(stack: str) -> dict[str, str]:
    done = subprocess.run(
        [str(ROOT / "venv" / "bin" / "python"), str(SCRIPTS / "stack-settings.py"), stack],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_staging_and_prod_reach_every_one_of_their_hosts_over_ssh() -> None:
    """The workflows pass one SSH key and pinned host keys for every Docker host of the stack."""
    for stack in STACKS:
        config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        assert not any(key.startswith("docker:") for key in config), "the program reads hosts from medisys:hosts only"
        found = stack_settings(stack)
        engines = [h["docker_host"] for h in config["medisys:hosts"]]
        assert found["docker_host"] == engines[0] and all(e.startswith("ssh://") for e in engines)
        assert found["ssh_targets"].split() == [e.removeprefix("ssh://") for e in engines]
        if found["db_tunnel"] == "true":
            assert found["db_admin_host"] == "127.0.0.1"
            assert found["db_primary"].endswith(":5432")


def access(action: str, stack: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SSH_", "DOCKER_TLS_", "DB_TUNNEL"))}
    return subprocess.run(
        [str(SCRIPTS / "stack-access"), action, stack],
        env={**base, "HOME": str(home), "RUNNER_TEMP": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_stack_access_needs_nothing_for_dev(tmp_path: Path) -> None:
    assert access("open", "dev", tmp_path).returncode == 0
    assert not (tmp_path / ".ssh").exists()
    assert access("close", "dev", tmp_path).returncode == 0


def test_stack_access_names_the_missing_secret(tmp_path: Path) -> None:
    done = access("open", "staging", tmp_path)
    assert done.returncode == 1
    assert "SSH_PRIVATE_KEY" in done.stdout


def test_stack_access_close_removes_what_open_wrote(tmp_path: Path) -> None:
    # The tunnel cannot open (nothing listens on port 1), so open fails after writing the key.
    opened = access(
        "open",
        "staging",
        tmp_path,
        SSH_PRIVATE_KEY="not-a-real-key",
        SSH_KNOWN_HOSTS="staging-docker.example ssh-ed25519 AAAA",
        DB_TUNNEL_VIA="ssh://deploy@127.0.0.1:1",
    )
    ssh = tmp_path / ".ssh"
    assert opened.returncode == 1, opened.stdout
    assert (ssh / "medisys-staging").stat().st_mode & 0o777 == 0o600
    assert "# medisys-ci staging begin" in (ssh / "config").read_text()
    closed = access("close", "staging", tmp_path)
    assert closed.returncode == 0, closed.stdout + closed.stderr
    assert sorted(p.name for p in ssh.iterdir()) == ["config"]
    assert "medisys-ci" not in (ssh / "config").read_text()
    assert not (tmp_path / "medisys-access-staging").exists()


def test_workflows_run_the_cli_version_the_local_toolchain_builds():
    import re

    local = re.search(r"^PULUMI_VERSION=(\S+)$", (ROOT / "scripts" / "lib" / "toolchain.sh").read_text(), re.M)
    assert local, "scripts/lib/toolchain.sh pins no PULUMI_VERSION"
    versions = {
        str(step["with"].get("pulumi-version"))
        for name in ("preview.yml", "deploy.yml", "drift.yml")
        for job in workflow(name)["jobs"].values()
        for step in steps_using(job, PULUMI_ACTION)
    }
    assert versions == {local.group(1)}
