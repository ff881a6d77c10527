"""A bounded load test of `dlapps serve` on 127.0.0.1: detect with 1 and 8 concurrent clients (p50 / p95 latency,
throughput, errors) against the API's in-process latency on the same photos, then 100 concurrent enrolments of
different people, then a killed server (SIGKILL) and a count of what the gallery kept.

    python benchmarks/serve_load.py ../shared/data --output runs/serve_load [--requests 40] [--port 8765]
        [--max-batch 1] [--repeats 1] [--detect-only]

The server is started here with `--duration` (it stops by itself) and killed at the end. Writes `results.json`.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def post(url, fields, files, timeout=120):
    """A multipart POST with the standard library; (status, seconds)."""
    boundary = "dlapps-load-test"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n\r\n'
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError:
        status = 0
    return status, time.perf_counter() - start


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(url, photos, clients, requests_each, server_pid=None):
    """`clients` threads, each posting `requests_each` photos in turn; latency percentiles, throughput, and the CPU
    cores the server kept busy on average (what bounds the speed-up of many clients over one)."""
    cpu_before = cpu_seconds(server_pid) if server_pid else None

    def client(index):
        results = []
        for number in range(requests_each):
            photo = photos[(index * requests_each + number) % len(photos)]
            results.append(post(url, {}, {"image": (photo.name, photo.read_bytes())}))
        return results

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for batch in pool.map(client, range(clients)) for r in batch]
    wall = time.perf_counter() - start
    times = sorted(t for status, t in results if status == 200)
    cpu_after = cpu_seconds(server_pid) if cpu_before is not None else None
    return {
        "server_cores": round((cpu_after - cpu_before) / wall, 2) if cpu_after is not None else None,
        "clients": clients, "requests": len(results), "errors": sum(status != 200 for status, _ in results),
        "p50_ms": round(1000 * statistics.median(times), 1) if times else None,
        "p95_ms": round(1000 * times[int(0.95 * (len(times) - 1))], 1) if times else None,
        "throughput_per_s": round(len(results) / wall, 2),
    }  # fmt: skip


def in_process_ms(photos):
    """The API's own latency on the same photo bytes (the floor a server adds its overhead to)."""
    import dlapps

    detector = dlapps.ObjectDetector.from_preset("fruit")
    data = [p.read_bytes() for p in photos]
    detector.predict(data[0])
    times = []
    for item in data:
        start = time.perf_counter()
        detector.predict(item)
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.median(times), 1)


def wait_ready(base, process, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited early (code {process.returncode})")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the server did not start")


def finish(args, results):
    """The in-process floor, the one-client overhead, then results.json and the printout."""
    photos = sorted((args.data / "fruit_detection" / "test").glob("*.jpg"))[:40]
    results["in_process_ms"] = in_process_ms(photos)
    results["one_client_overhead_ms"] = round(results["one_client"]["p50_ms"] - results["in_process_ms"], 1)
    (args.output / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="the shared data folder (fruit_detection/test, lfw)")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=40, help="requests per client")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--concurrency", type=int, default=4, help="the server's --concurrency")
    parser.add_argument("--max-batch", type=int, default=1, help="the server's --max-batch (1: no micro-batches)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the 1- and 8-client loads (the spread)")
    parser.add_argument("--detect-only", action="store_true", help="skip the enrolment and kill tests")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    photos = sorted((args.data / "fruit_detection" / "test").glob("*.jpg"))[:40]
    faces = sorted(p for p in (args.data / "lfw").glob("*/*.jpg"))
    people = {}
    for photo in faces:  # one photo each of 100 different people
        people.setdefault(photo.parent.name, photo)
        if len(people) == 100:
            break
    gallery = args.output / "gallery.db"
    gallery.unlink(missing_ok=True)
    base = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "dlapps", "serve", "--models", "detect,faces", "--port", str(args.port),
               "--gallery", str(gallery), "--duration", "1800", "--concurrency", str(args.concurrency),
               "--max-batch", str(args.max_batch)]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {"photos": len(photos), "machine": f"{os.cpu_count()} CPU cores", "concurrency": args.concurrency,
               "max_batch": args.max_batch}  # fmt: skip
    try:
        wait_ready(base, server)
        post(base + "/v1/detect", {}, {"image": (photos[0].name, photos[0].read_bytes())})  # warm-up
        rounds = []
        for _ in range(args.repeats):
            one = load(base + "/v1/detect", photos, 1, args.requests, server.pid)
            eight = load(base + "/v1/detect", photos, 8, args.requests, server.pid)
            rounds.append({"one_client": one, "eight_clients": eight,
                           "speed_up": round(eight["throughput_per_s"] / one["throughput_per_s"], 2)})  # fmt: skip
        results.update(rounds[0])
        if args.repeats > 1:
            results["rounds"] = rounds
            results["speed_ups"] = [r["speed_up"] for r in rounds]
        if args.detect_only:
            return finish(args, results)
        start = time.perf_counter()
        with ThreadPoolExecutor(100) as pool:
            statuses = list(pool.map(lambda item: post(f"{base}/v1/faces/subjects/{item[0]}/faces", {},
                                                       {"image": (item[1].name, item[1].read_bytes())})[0],
                                     people.items()))  # fmt: skip
        enrolled = json.loads(urllib.request.urlopen(base + "/v1/faces/subjects").read())["subjects"]
        seconds = round(time.perf_counter() - start, 1)
        results["enrolments"] = {"sent": len(people), "answered_201": statuses.count(201),
                                 "statuses": {str(s): statuses.count(s) for s in set(statuses)},
                                 "subjects_after": len(enrolled), "seconds": seconds}  # fmt: skip
        # Kill the server while enrolments are still arriving: every enrolment it answered 201 must survive.
        answered = []
        more = [(f"late_{name}", photo) for name, photo in people.items()]

        def late(item):
            photo = {"image": (item[1].name, item[1].read_bytes())}
            status, _ = post(f"{base}/v1/faces/subjects/{item[0]}/faces", {}, photo)
            if status == 201:
                answered.append(item[0])

        threads = [threading.Thread(target=late, args=(item,)) for item in more]
        [thread.start() for thread in threads]
        time.sleep(1)
        server.send_signal(signal.SIGKILL)
        [thread.join() for thread in threads]
    finally:
        server.kill()
        server.wait()
    from dlapps.gallery import Gallery

    kept = {name for name, _ in Gallery(gallery).people()}
    results["killed"] = {"late_answered_201": len(answered), "late_kept": sum(n in kept for n in answered),
                         "lost": sorted(set(answered) - kept), "subjects_in_file": len(kept)}  # fmt: skip
    finish(args, results)


if __name__ == "__main__":
    main()
