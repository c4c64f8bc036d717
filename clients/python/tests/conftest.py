"""The test setting: a vhost of its own on the local RabbitMQ per test, and the real
wecom-archive worker binary against the SDK emulator, as in the Rust suite.

The binary and the emulator library come from the workspace's debug build
(``cargo build --workspace``), or from ``WECOM_TEST_BIN`` and ``WECOM_TEST_EMULATOR_LIB``.
"""

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(os.environ.get("WECOM_TEST_BIN", REPO / "target/debug/wecom-archive"))
EMULATOR = Path(
    os.environ.get("WECOM_TEST_EMULATOR_LIB", REPO / "target/debug/libWeWorkFinanceSdk_C.so")
)
KEYS = REPO / "tests/fixtures/keys"


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", *args], check=True, stdout=subprocess.DEVNULL)


@pytest.fixture
def broker_url():
    vhost = f"wecom-pytest-{uuid.uuid4()}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run(
        ["rabbitmqctl", "delete_vhost", vhost],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def private_keys():
    return [
        {"publickey_ver": version, "private_key": (KEYS / f"v{version}.pem").read_text()}
        for version in (1, 2)
    ]


def emulator_corps():
    public = {str(v): (KEYS / f"v{v}.pub.pem").read_text() for v in (1, 2)}
    return [
        {"corpid": "ww-emulator", "secret": "emulator-secret", "public_keys": public},
        {"corpid": "ww-offlist", "secret": "offlist-secret", "public_keys": public,
         "seed": 3, "whitelisted": False},
        {"corpid": "ww-down", "secret": "down-secret", "public_keys": public, "seed": 4,
         "faults": {"get_chat_data": {"probability": 1.0, "codes": [10001]}}},
    ]


@pytest.fixture
def worker(broker_url, tmp_path):
    config = tmp_path / "emulator.json"
    config.write_text(json.dumps({"corps": emulator_corps()}))
    log = tmp_path / "worker.log"
    env = dict(
        os.environ,
        WECOM_AMQP_URL=broker_url,
        WECOM_SDK_LIB=str(EMULATOR),
        WECOM_MEDIA_DIR=str(tmp_path / "media"),
        WECOM_RETRY_DELAYS="1",
        WECOM_MAX_ATTEMPTS="2",
        WECOM_EMULATOR_CONFIG=str(config),
        WECOM_EMULATOR_COUNTERS=str(tmp_path / "counters"),
        RUST_LOG="wecom_archive=info",
    )
    with open(log, "wb") as stderr:
        process = subprocess.Popen([BIN, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.monotonic() + 30
    while b"consuming" not in log.read_bytes():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    yield process
    process.terminate()
    process.wait(timeout=60)
