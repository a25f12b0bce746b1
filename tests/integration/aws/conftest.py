"""Fixtures for the AWS tests: a moto EC2 server on 127.0.0.1, fake credentials, fresh subnets,
and a HOME for the ordinary account Ansible runs as (aws_helpers.as_controller).

Nothing here can reach real AWS: credentials are fake, every endpoint variable points at the
local server, and the fixtures refuse any endpoint that is not on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from aws_helpers import CONTROLLER_GID
from aws_helpers import CONTROLLER_UID
from aws_helpers import REGION
from aws_helpers import REPO
from aws_helpers import SUBNET_CIDR
from aws_helpers import VPC_CIDR
from aws_helpers import as_controller
from aws_helpers import client
from aws_helpers import moto_server


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture(scope="session")
def controller_home():
    """HOME of the account Ansible runs as: its own (Ansible writes ~/.ansible there), readable by it
    (pytest's own temporary directories are private to root), removed at the end."""
    home = Path(tempfile.mkdtemp(prefix="tproxy-aws-controller-"))
    try:
        home.chmod(0o755)
        if os.geteuid() == 0:
            os.chown(home, CONTROLLER_UID, CONTROLLER_GID)
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def tmp_path(controller_home, request):
    """A fresh directory per test inside controller_home, so that the playbooks and inventories a
    test writes are readable by the account Ansible runs as."""
    name = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=controller_home))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def collections_path(controller_home):
    """This checkout seen as ansible_collections/tproxy/envoy."""
    root = controller_home / "collections"
    namespace = root / "ansible_collections" / "tproxy"
    namespace.mkdir(parents=True)
    (namespace / "envoy").symlink_to(REPO)
    return root


@pytest.fixture(scope="session")
def aws_env(moto_endpoint, collections_path, controller_home):
    """Environment for boto3 and Ansible: fake credentials, every endpoint = the moto server, the
    controller account's own HOME."""
    assert moto_endpoint.startswith("http://127.0.0.1:"), moto_endpoint
    home = controller_home
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EC2_", "TPROXY_AWS_"))}
    user = "nobody" if os.geteuid() == 0 else env.get("USER", "")
    env.update(
        HOME=str(home),
        USER=user,
        LOGNAME=user,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        # amazon.aws modules and the aws_ec2 inventory read AWS_URL; boto3 itself AWS_ENDPOINT_URL.
        AWS_URL=moto_endpoint,
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        ANSIBLE_COLLECTIONS_PATH=str(collections_path),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )
    # The proof that the tests' Ansible runs are no root's: the account they start as.
    proc = subprocess.run(as_controller([sys.executable, "-c", "import os; print(os.geteuid())"]), env=env,
                          capture_output=True, text=True, check=True)
    assert int(proc.stdout) != 0, "the AWS tests must run Ansible as an ordinary account"
    return env


@pytest.fixture(scope="session")
def ec2(aws_env):
    return client("ec2", aws_env["AWS_URL"])


@pytest.fixture(scope="session")
def ami_id(ec2):
    return ec2.describe_images()["Images"][0]["ImageId"]


@pytest.fixture
def subnet(ec2):
    """A fresh VPC and subnet for one test; its instances are terminated afterwards."""
    vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock=SUBNET_CIDR)["Subnet"]["SubnetId"]
    yield subnet_id
    reservations = ec2.describe_instances(Filters=[{"Name": "subnet-id", "Values": [subnet_id]}])["Reservations"]
    ids = [i["InstanceId"] for r in reservations for i in r["Instances"]]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)


@pytest.fixture
def unique_tag():
    """A tag value no other test uses, so tests sharing the server do not see each other."""
    return f"t{uuid.uuid4().hex[:12]}"
