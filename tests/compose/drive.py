#!/usr/bin/env python3
"""Drives the deployment scripts/compose-test brought up: jobs through the HTTP gateway and
straight to RabbitMQ, faults between the batches (a worker container killed, the broker
container restarted, the workers scaled to 2 and back to 4), then a check that every job ended
with all its results, none failed (so none ran past its delivery limit) and no dead letter is
left. Prints `compose workers=4 jobs=N ok=N lost=0 restarts_survived=K`; exits 1 on any loss.
"""

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pika
import requests

CORPID = "ww-emulator"
SECRET = "emulator-secret"
PAGES = 3
CHAT_JOBS_PER_BATCH = 8
MEDIA_JOBS_PER_BATCH = 10
WORKERS = 4


def log(message):
    print(f"compose-test: {message}", file=sys.stderr, flush=True)


class Deployment:
    """The compose project: its containers, and podman-compose for scaling."""

    def __init__(self, args):
        self.args = args

    def containers(self, service, stopped_too=False):
        out = subprocess.run(
            ["podman", "ps"] + (["--all"] if stopped_too else []) + ["--format", "{{.Names}}",
             "--filter", f"label=io.podman.compose.project={self.args.project}",
             "--filter", f"label=io.podman.compose.service={service}"],
            check=True, capture_output=True, text=True).stdout
        return sorted(out.split())

    def kill_one_worker(self):
        """SIGKILL to a worker's process from the host, as a crash or the OOM killer would: the
        engine sees it die, not stopped by a user (its restart policy may start it again)."""
        victim = self.containers("worker")[0]
        pid = subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", victim],
                             check=True, capture_output=True, text=True).stdout.strip()
        log(f"killing {victim} (SIGKILL to its process {pid})")
        os.kill(int(pid), signal.SIGKILL)

    def restart_broker(self):
        broker = self.containers("rabbitmq")[0]
        log(f"restarting {broker}")
        subprocess.run(["podman", "restart", broker], check=True, capture_output=True)

    def scale_workers(self, count):
        """As `docker compose up --scale worker=N`: surplus workers are stopped (SIGTERM, so
        they drain) and removed, the highest-numbered first; missing ones are created.
        podman-compose creates replicas but does not remove surplus ones."""
        log(f"scaling the workers to {count}")
        number = lambda name: int(name.rsplit("_", 1)[1])  # noqa: E731
        for surplus in [c for c in self.containers("worker", stopped_too=True) if number(c) > count]:
            subprocess.run(["podman", "stop", "--time", "60", surplus], check=True,
                           capture_output=True)
            subprocess.run(["podman", "rm", surplus], check=True, capture_output=True)
        subprocess.run(self.args.compose + ["up", "-d", "--no-build", "--scale",
                                            f"worker={count}", "worker"],
                       check=True, capture_output=True)
        if len(self.containers("worker")) != count:
            raise SystemExit(f"compose-test: {self.containers('worker')} after scaling to {count}")

    def healthy(self, service):
        """Runs the compose file's health check of each of `service`'s containers once (podman
        runs them on a timer only under systemd); whether all pass."""
        return all(subprocess.run(["podman", "healthcheck", "run", name],
                                  capture_output=True).returncode == 0
                   for name in self.containers(service))


class Broker:
    """A publisher with confirms and a reader of the result and dead-letter queues, which
    connects again when the broker restarts under it."""

    def __init__(self, url):
        self.url = url
        self.connection = None
        self.channel = None

    def _channel(self):
        deadline = time.monotonic() + 120
        while self.channel is None or not self.channel.is_open:
            try:
                self.connection = pika.BlockingConnection(pika.URLParameters(self.url))
                self.channel = self.connection.channel()
                self.channel.confirm_delivery()
            except pika.exceptions.AMQPError as err:
                if time.monotonic() > deadline:
                    raise
                log(f"broker not reachable yet ({type(err).__name__}); trying again")
                time.sleep(1)
        return self.channel

    def _retrying(self, action):
        for attempt in range(60):
            try:
                return action(self._channel())
            except pika.exceptions.AMQPError as err:
                log(f"broker call failed ({type(err).__name__}); connecting again")
                self.channel = None
                time.sleep(1)
        raise RuntimeError("the broker did not come back")

    def publish(self, kind, body):
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json",
                                          message_id=body["job_id"])
        self._retrying(lambda ch: ch.basic_publish(
            "wecom.jobs", kind, json.dumps(body).encode(), properties, mandatory=True))

    def take_all(self, queue):
        def take(channel):
            taken = []
            while True:
                method, _, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return taken
                taken.append(json.loads(body))
        return self._retrying(take)

    def depth(self, queue):
        return self._retrying(
            lambda ch: ch.queue_declare(queue, passive=True).method.message_count)

    def consumers(self, queue):
        return self._retrying(
            lambda ch: ch.queue_declare(queue, passive=True).method.consumer_count)


def inline_job(keys, **fields):
    return {"corpid": CORPID, "secret": SECRET, "private_keys": keys, **fields}


def wait_until(what, check, timeout):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"compose-test: {what} did not happen within {timeout} s")
        time.sleep(1)


def through_the_gateway(http, keys, run):
    """Chat and media requests through the gateway (which runs them on the workers); returns
    (jobs, ok, media files named by the page) and checks each answer."""
    page = requests.post(f"{http}/v1/chatdata", json=inline_job(
        keys, job_id=f"{run}-http-chat", seq=0, limit=1000), timeout=120)
    page.raise_for_status()
    messages = page.json()["messages"]
    media = []
    for message in messages:
        body = message["message"]
        kind = body.get("msgtype")
        item = body.get(kind) if isinstance(body.get(kind), dict) else None
        if item and item.get("sdkfileid") and item.get("md5sum"):
            media.append((item["sdkfileid"], item["md5sum"]))
    compat = requests.post(f"{http}/wecom/finance/chatdata", json={
        "seq": 0, "limit": 10, "corpid": CORPID, "secret": SECRET, "proxy": None,
        "paswd": None, "private_keys": keys}, timeout=120)
    compat.raise_for_status()
    jobs, ok = 2, int(len(messages) > 0) + int(len(compat.json()) == 10)
    for sdkfileid, md5sum in media[:3]:
        answer = requests.post(f"{http}/v1/media", json=inline_job(
            keys, job_id=f"{run}-http-media-{md5sum[:8]}", sdkfileid=sdkfileid,
            md5sum=md5sum), timeout=120)
        jobs += 1
        ok += int(answer.status_code == 200 and hashlib.md5(answer.content).hexdigest() == md5sum)
    return jobs, ok, media


def publish_batch(broker, keys, run, batch, media, expected):
    for n in range(CHAT_JOBS_PER_BATCH):
        job_id = f"{run}-{batch}-chat-{n}"
        broker.publish("fetch-chatdata", inline_job(
            keys, job_id=job_id, seq=n * 37, limit=100, max_pages=PAGES))
        expected[job_id] = {f"{job_id}:page-{p}" for p in range(1, PAGES + 1)}
    for n, (sdkfileid, md5sum) in enumerate(media[:MEDIA_JOBS_PER_BATCH]):
        job_id = f"{run}-{batch}-media-{n}"
        broker.publish("fetch-media", inline_job(
            keys, job_id=job_id, sdkfileid=sdkfileid, md5sum=md5sum))
        expected[job_id] = {job_id}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--amqp", required=True)
    parser.add_argument("--http", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--keys-dir", required=True)
    parser.add_argument("--compose", required=True, help="the podman-compose command, as JSON")
    args = parser.parse_args()
    args.compose = json.loads(args.compose)
    deployment = Deployment(args)
    keys = [{"publickey_ver": v, "private_key": open(f"{args.keys_dir}/v{v}.pem").read()}
            for v in (1, 2)]
    run = uuid.uuid4().hex[:8]
    broker = Broker(args.amqp)

    wait_until("four workers consuming",
               lambda: broker.consumers("fetch-chatdata") >= WORKERS, 180)
    wait_until("the gateway ready", lambda: requests.get(
        f"{args.http}/readyz", timeout=5).status_code == 200, 120)
    # The compose file's health checks (/readyz), as the engine would run them.
    wait_until("every worker and the gateway healthy",
               lambda: deployment.healthy("worker") and deployment.healthy("gateway"), 60)
    http_jobs, http_ok, media = through_the_gateway(args.http, keys, run)
    log(f"gateway: {http_ok} of {http_jobs} answered; {len(media)} media files named")
    if len(media) < MEDIA_JOBS_PER_BATCH:
        raise SystemExit("compose-test: the first page named too few media files")

    expected = {}
    survived = 0
    publish_batch(broker, keys, run, "a", media, expected)
    deployment.kill_one_worker()
    survived += 1
    publish_batch(broker, keys, run, "b", media, expected)
    deployment.restart_broker()
    survived += 1
    publish_batch(broker, keys, run, "c", media, expected)
    deployment.scale_workers(2)
    publish_batch(broker, keys, run, "d", media, expected)
    deployment.scale_workers(WORKERS)
    survived += 1
    wait_until("the workers scaled back", lambda: broker.consumers("fetch-chatdata") >= WORKERS,
               180)

    seen, failures = {}, []
    wanted = set().union(*expected.values())

    def all_in():
        for queue in ("chatdata-results", "media-results"):
            for result in broker.take_all(queue):
                if result.get("status") != "ok":
                    failures.append(result)
                elif result.get("result_id") in wanted:
                    seen[result["result_id"]] = result
        return wanted <= seen.keys() or failures

    wait_until("every result", all_in, 300)
    bad_media = [r["result_id"] for r in seen.values()
                 if "media" in r["result_id"] and r.get("md5_matched") is not True]
    dead = broker.depth("fetch-chatdata.dead") + broker.depth("fetch-media.dead")
    lost = [job for job, ids in expected.items() if not ids <= seen.keys()]
    jobs = len(expected) + http_jobs
    ok = len(expected) - len(lost) - len(bad_media) + http_ok
    workers = len(deployment.containers("worker"))
    print(f"compose workers={workers} jobs={jobs} ok={ok} lost={len(lost)} "
          f"restarts_survived={survived}")
    problems = []
    if failures:
        codes = sorted({f.get("error", {}).get("code") for f in failures})
        problems.append(f"{len(failures)} failure results (codes {codes}; 20305 is a job "
                        "past its delivery limit)")
    if lost:
        problems.append(f"lost: {lost[:5]}")
    if bad_media:
        problems.append(f"media not matching their md5: {bad_media[:5]}")
    if dead:
        problems.append(f"{dead} dead letters")
    if ok != jobs:
        problems.append(f"{jobs - ok} jobs not ok")
    if workers != WORKERS:
        problems.append(f"{workers} workers running, not {WORKERS}")
    for problem in problems:
        log(problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
