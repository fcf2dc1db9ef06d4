"""The README's first example is docs/examples/quickstart.sh, run here against a fresh `bandit-push serve` (embedded
Redis, seeded draws, one worker): the README must show what it prints (ids and times masked)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests
from redis_proc import free_port, wait_healthy
from waits import until

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- quickstart.sh output: begin -->", "<!-- quickstart.sh output: end -->"


def mask(text: str) -> str:
    """The transcript without what changes from run to run: decision ids, dates and epoch times, the data dir."""
    text = re.sub(r"[0-9a-f]{20}\.default", "<decision id>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d", "<date>", text)
    text = re.sub(r"\b1\d{9}(\.\d+)?\b", "<time>", text)
    return re.sub(r"\(/[^()]*\)", "(<data dir>)", text).strip()


def readme_transcript() -> str:
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index(BEGIN) + len(BEGIN):readme.index(END)]
    return block.strip().removeprefix("```sh").removesuffix("```").strip()


def _no_refit_in_flight(base: str) -> None:
    """Wait out the scheduler's first MF refit: one that ran after the script's events would make the decide's items
    the model's instead of the popular list's. The scheduler enqueues its first jobs together, the popular lists'
    first; once those ran, asking for a refit answers the scheduler's if it is queued or running."""
    until(lambda: requests.get(f"{base}/readyz", timeout=10).json()["items"]["age_s"] is not None, timeout=60,
          what="the scheduler's first popular lists", every=0.2)
    job_id = requests.post(f"{base}/v1/models/mf/refit", timeout=10).json()["job_id"]
    until(lambda: requests.get(f"{base}/v1/jobs/{job_id}", timeout=10).json()["state"] in ("finished", "failed"),
          timeout=60, what="the MF refit's end", every=0.2)


def test_the_readme_shows_what_the_quickstart_script_prints(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(BANDIT_PUSH_DATA_DIR=str(tmp_path / "data"), BANDIT_PUSH_SEED="3")
    serve = subprocess.Popen([sys.executable, "-m", "bandit_push.cli", "serve", "--port", str(port), "--workers", "1"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", serve, timeout=60)
        _no_refit_in_flight(f"http://127.0.0.1:{port}")
        done = subprocess.run(["sh", str(ROOT / "docs" / "examples" / "quickstart.sh")], cwd=tmp_path, timeout=120,
                              env=dict(env, BASE=f"127.0.0.1:{port}",
                                       BANDIT_PUSH=str(Path(sys.executable).parent / "bandit-push")),
                              capture_output=True, text=True)
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)
    print(done.stdout)
    assert done.returncode == 0, done.stderr
    assert '"send":true' in done.stdout and '"status":"accepted"' in done.stdout  # a push, and its click credited
    assert mask(done.stdout) == mask(readme_transcript())
