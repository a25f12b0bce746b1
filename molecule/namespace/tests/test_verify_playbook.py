"""playbooks/verify.yml passes against the converged lab."""

import subprocess

testinfra_hosts = ["local://"]


def test_verify_playbook_passes(project):
    result = subprocess.run(["ansible-playbook", "-i", "inventories/lab", "playbooks/verify.yml"], cwd=project,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "server: envoy" in result.stdout
