"""Load test of ``cmrm serve``: one-at-a-time vs N concurrent clients, side by side in one run.

Starts the real ``cmrm serve`` command in its own process on 127.0.0.1 (a free port; nothing else
is contacted; the clients stay out of its interpreter), then sends the same fixed list of requests
(greedy, a dataset-level shift, half of them with an image) twice: once from one client, one
request at a time, and once from ``--clients`` concurrent clients that share the list. Each phase stops by itself when the list is done. Prints requests/s and p50/p95
latency of both, the throughput ratio (target: >= 3x at 8 clients), and how many completions
differ between the two phases (must be 0: batching never changes a greedy answer). With
``--rounds 2`` (the default) the phases run in both orders and the times add up, so a drift in
machine load hits both alike.

    python benchmarks/serve_load.py                        # random 100M-parameter LLaVA, CPU
    python benchmarks/serve_load.py --model organism       # the bundled organism (tiny)
    python benchmarks/serve_load.py --clients 8 --requests 48 --max-tokens 32 --threads 2
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from overhead import build, random_shift

from cmrm.calibration.estimate import calibrate
from cmrm.data import load_items
from cmrm.models import load_vlm
from tests.serving import data_url

WORDS = ["red", "blue", "square", "circle", "what", "is", "this", "the", "shape", "colour"]


@dataclass(frozen=True)
class Request:
    messages: list[dict[str, Any]]


@dataclass
class Phase:
    name: str
    wall: float = 0.0
    latencies: list[float] | None = None
    answers: dict[int, str] | None = None

    def add(self, wall: float, latencies: list[float], answers: dict[int, str]) -> None:
        self.wall += wall
        self.latencies = (self.latencies or []) + latencies
        self.answers = {**(self.answers or {}), **answers}


def requests_for(count: int, random_words: bool) -> list[Request]:
    out = []
    for i in range(count):
        words = (
            [f"w{(7 * i + j) % 8000}" for j in range(8 + i % 5)]
            if random_words
            else [WORDS[(3 * i + j) % len(WORDS)] for j in range(4 + i % 4)]
        )
        parts: list[dict[str, Any]] = []
        if i % 2 == 0:
            colour = ("red", "blue", "green", "white")[i % 4]
            url = data_url(Image.new("RGB", (32, 32), colour))
            parts.append({"type": "image_url", "image_url": {"url": url}})
        parts.append({"type": "text", "text": " ".join(words)})
        out.append(Request([{"role": "user", "content": parts}]))
    return out


def run_phase(
    base: str, requests: list[Request], clients: int, max_tokens: int
) -> tuple[float, list[float], dict[int, str]]:
    todo = list(range(len(requests)))
    lock = threading.Lock()
    latencies: list[float] = []
    answers: dict[int, str] = {}

    def client_loop() -> None:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=600)
        while True:
            with lock:
                if not todo:
                    break
                index = todo.pop(0)
            start = time.perf_counter()
            reply = client.chat.completions.create(
                model="bench",
                messages=requests[index].messages,  # type: ignore[arg-type]
                temperature=0,
                max_tokens=max_tokens,
            )
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                answers[index] = reply.choices[0].message.content or ""
        client.close()

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, latencies, answers


def percentile(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def prepare(model: str, folder: Path) -> tuple[str, Path, str]:
    """The MODEL argument for `cmrm serve`, a shift directory, and a description."""
    if model == "organism":
        vlm = load_vlm("organism")
        shift = calibrate(vlm, load_items("organism:anchor", limit=16))
        target = "organism"
    else:
        vlm = build("100m", 8000, torch.float32, "cpu")  # EOS off: every answer is max_tokens
        shift = random_shift(vlm)
        vlm.model.save_pretrained(folder / "model")
        vlm.processor.save_pretrained(folder / "model")
        target = str(folder / "model")
    params = sum(p.numel() for p in vlm.model.parameters()) / 1e6
    return target, shift.save(folder / "shift"), f"{vlm.model_id} ({params:.0f}M parameters)"


@contextmanager
def server(target: str, shift: Path, args: argparse.Namespace) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable, "-m", "cmrm", "serve", target, "--shift", str(shift),
        "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "bench",
        "--max-batch", str(args.clients), "--max-queue", str(4 * args.clients),
        "--batch-wait-ms", str(args.batch_wait_ms), "--max-new-tokens", str(args.max_tokens),
    ]  # fmt: skip
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            if process.poll() is not None:
                raise SystemExit(f"cmrm serve exited with {process.returncode}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("cmrm serve did not come up in 10 minutes")
            time.sleep(0.5)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["random-100m", "organism"], default="random-100m")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-wait-ms", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1, help="the server's CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        target, shift, description = prepare(args.model, Path(tmp))
        requests = requests_for(args.requests, random_words=args.model != "organism")
        print(
            f"model: {description}, CPU, {args.threads} server thread(s); {args.requests} requests "
            f"x {args.rounds} rounds, max_tokens {args.max_tokens} (greedy), dataset-level "
            "shift, half with an image; `cmrm serve` on 127.0.0.1"
        )
        sequential, concurrent = Phase("one at a time"), Phase(f"{args.clients} concurrent")
        with server(target, shift, args) as base:
            run_phase(base, requests[: args.clients], args.clients, 4)  # warm-up
            for round_index in range(args.rounds):
                order = [(sequential, 1), (concurrent, args.clients)]
                for phase, clients in order if round_index % 2 == 0 else order[::-1]:
                    phase.add(*run_phase(base, requests, clients, args.max_tokens))
            stats = httpx.get(f"{base}/health").json()
    print(f"{'mode':<16} {'requests/s':>10} {'p50 s':>7} {'p95 s':>7}")
    total = args.requests * args.rounds
    for phase in (sequential, concurrent):
        latencies = phase.latencies or []
        print(
            f"{phase.name:<16} {total / phase.wall:>10.2f} {percentile(latencies, 50):>7.2f} "
            f"{percentile(latencies, 95):>7.2f}"
        )
    ratio = sequential.wall / concurrent.wall
    differ = sum(
        (sequential.answers or {})[i] != (concurrent.answers or {})[i] for i in range(args.requests)
    )
    print(
        f"throughput ratio: {ratio:.2f}x (target >= 3x at 8 clients); completions differing: "
        f"{differ} of {args.requests}; mean batch over the run "
        f"{stats['batched_requests'] / stats['batches']:.2f}"
    )


if __name__ == "__main__":
    main()
