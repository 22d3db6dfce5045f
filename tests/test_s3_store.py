"""The store on a real S3-compatible server: moto's, started on 127.0.0.1 and reached the way a user reaches a
real bucket (the standard AWS environment variables, AWS_ENDPOINT_URL included; README, "Results on shared
storage"). A suite runs with `--results s3://bucket/prefix`; its trials, predictions, kept adapters, the
consolidated file, `status`, `doctor`, `report` and a rerun all go through the S3 API. Writers are killed in the
middle of an upload: a reader then sees nothing of what they were writing, and what was stored before reads whole.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from tests.conftest import ROOT

BUCKET = "peft-bench-test"

# The smoke suite's shape (both task families, a peft method and an in-house one) at a size CI affords.
SUITE = """
name: s3
version: "1"
description: the smoke grid's shape, tiny, on an object store
defaults:
  model: tiny-llama
  train: {epochs: 1, batch_size: 8, micro_batch_size: 8, learning_rate: 3.0e-3, warmup_steps: 1,
          cutoff_len: 96, max_train_examples: 16, max_steps: 2}
  eval: {num_beams: 1, batch_size: 8, max_eval_examples: 4, max_new_tokens: 8}
grid:
  task:
    - {label: math, train_data: emb-math_10k, eval_data: [emb-gsm8k, emb-AQuA]}
    - {label: commonsense, train_data: emb-commonsense_170k, eval_data: [emb-boolq], train.cutoff_len: 144}
  method: [lora, series]
overrides:
  - when: {method: lora}
    set: {method_args: {r: 4, alpha: 8}}
  - when: {method: series}
    set: {method_args.bottleneck_size: 8}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server with one bucket; the AWS variables point this process and its children at it."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {endpoint}") from None
                time.sleep(0.2)
        import boto3

        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def keys(client, prefix: str) -> dict[str, str]:
    """Every object under `prefix` (as the S3 API lists it) -> its ETag."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        found.update({item["Key"]: item["ETag"] for item in page.get("Contents", [])})
    return found


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory):
    suite = tmp_path_factory.mktemp("s3run") / "s3.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    return suite


@pytest.fixture(scope="module")
def run(s3, suite_file):
    folder, suite = suite_file.parent, suite_file
    results = f"s3://{BUCKET}/runs/one"
    started = time.monotonic()
    proc = cli("run", str(suite), "--results", results, "--max-concurrent", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(f"s3 run: {time.monotonic() - started:.1f} s")
    return folder, suite, results, proc


def test_a_suite_runs_on_s3_and_everything_it_stores_is_there(s3, run):
    from benchmark.planner import plan
    from benchmark.store import Store

    _, suite, results, proc = run
    _, trials = plan(str(suite))
    ids = {t.spec.trial_id for t in trials}
    assert len(ids) == 4 and "4 ok, 0 failed, 0 already stored" in proc.stdout, proc.stdout
    stored = keys(s3, "runs/one/s3/")
    assert not [k for k in stored if ".tmp-" in k], "a temporary key was left behind"
    for trial in trials:
        tid = trial.spec.trial_id
        assert f"runs/one/s3/trials/{tid}.parquet" in stored
        assert f"runs/one/s3/adapters/{tid}/manifest.json" in stored
        for name in trial.spec.eval_data:
            assert f"runs/one/s3/predictions/{tid}/{name}.parquet" in stored
    assert "runs/one/s3/consolidated.parquet" in stored  # the run's compaction, on the object store
    # whatever else the run kept in the store (its trial leases, Ray's experiment state) left no temporary key,
    # and every lease it held is released
    assert not [k for k in keys(s3, "runs/one/") if ".tmp-" in k]
    assert not [k for k in keys(s3, "runs/one/.leases/") if k.endswith(".json")]

    store = Store(results)
    frame = store.read(["s3"])
    assert set(frame["trial_id"]) == ids and set(frame["status"]) == {"ok"}
    # exactly one row set per trial: one row per (trial, eval dataset, metric): 2 math trials x 2, 2 commonsense x 1
    assert len(frame) == 2 * 2 + 2 * 1 and frame.groupby(["trial_id", "eval_data", "metric"]).size().eq(1).all()
    assert store.compact(["s3"]) == 0  # the run's compaction already folded every file in
    for trial in trials:
        tid = trial.spec.trial_id
        assert len(store.read_predictions("s3", tid, trial.spec.eval_data[0])) == 4
        assert store.has_adapter("s3", tid)  # checked whole against its manifest, over the S3 API
        local = store.fetch_adapter("s3", tid)
        try:
            assert (local / "manifest.json").is_file() and sum(1 for _ in local.iterdir()) >= 2
        finally:
            shutil.rmtree(local)


def test_status_doctor_report_and_a_rerun_work_on_s3(s3, run):
    folder, suite, results, _ = run
    status = cli("status", str(suite), "--results", results)
    assert status.returncode == 0 and "s3: 4 done, 0 failed, 0 remaining, 4 total" in status.stdout, status.stdout + status.stderr
    doctor = cli("doctor", "--results", results)
    assert doctor.returncode == 0 and "0 problem(s)" in doctor.stdout, doctor.stdout + doctor.stderr
    report = cli("report", str(suite), "--results", results, "--out", str(folder / "reports"))
    assert report.returncode == 0, report.stdout + report.stderr
    html = "".join(p.read_text() for p in (folder / "reports" / "s3").glob("*.html"))
    assert "emb-gsm8k" in html and "emb-boolq" in html

    before = {k: v for k, v in keys(s3, "runs/one/s3/").items() if "/trials/" in k or "/adapters/" in k or "/predictions/" in k}
    rerun = cli("run", str(suite), "--results", results)
    assert rerun.returncode == 0 and "0 ok, 0 failed, 4 already stored" in rerun.stdout, rerun.stdout + rerun.stderr
    after = keys(s3, "runs/one/s3/")
    assert {k: after.get(k) for k in before} == before  # nothing trained, nothing rewritten


def test_a_missing_bucket_or_an_unreachable_endpoint_is_one_line_before_anything_runs(s3, suite_file, monkeypatch):
    from benchmark.errors import UserError
    from benchmark.store import Store

    missing = cli("run", str(suite_file), "--results", "s3://no-such-bucket-here/x")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert "bucket 'no-such-bucket-here' not found" in missing.stderr and "Started a local Ray" not in missing.stderr
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")  # nobody listens there
    with pytest.raises(UserError, match=r"^--results 's3://[^']+': cannot reach the store \(.*AWS_ENDPOINT_URL") as caught:
        Store(f"s3://{BUCKET}/x")
    assert "\n" not in str(caught.value)


# A writer storing one ok trial whose predictions and adapter are large enough to be killed mid-upload: the
# predictions file goes up as a multipart upload, the adapter folder file by file.
WRITER = """
import os, sys, tempfile
from pathlib import Path
from benchmark.result import Prediction
from benchmark.store import Store
from benchmark.store.adapters import seal
from tests.test_store import make_spec, ok_result
result = ok_result(make_spec(seed=int(sys.argv[2])))
if sys.argv[3] == "predictions":
    blob = os.urandom(1 << 20).hex()  # 2 MB of text that does not compress
    result.predictions = {"gsm8k": [Prediction(f"gsm8k/{i}", "q", blob, "", "1", False) for i in range(48)]}
else:
    staged = Path(tempfile.mkdtemp())
    for i in range(24):
        (staged / f"shard-{i:02d}.bin").write_bytes(os.urandom(4 << 20))
    seal(staged, {})  # the staged folder's manifest: published last
    result.adapter_dir = str(staged)
print("ready", flush=True)
Store(sys.argv[1]).write(result)
print("done", flush=True)
"""


def _in_flight(client, prefix: str, what: str) -> bool:
    if what == "predictions":  # a multipart upload begun and not completed
        return any(u["Key"].startswith(prefix) for u in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))
    return any("/adapters/" in k and k.endswith(".bin") for k in keys(client, prefix))  # the first adapter files landed


@pytest.mark.parametrize("what", ["predictions", "adapter"])
def test_a_writer_killed_mid_upload_leaves_nothing_a_reader_sees(s3, what, tmp_path):
    from benchmark.store import Store
    from benchmark.store.adapters import seal
    from benchmark.store.doctor import diagnose
    from tests.test_store import make_spec, ok_result

    results = f"s3://{BUCKET}/killed/{what}"
    prefix = f"killed/{what}/"
    store = Store(results)
    earlier = ok_result(make_spec(seed=1))
    store.write(earlier)  # stored before: must read whole afterwards
    writer = subprocess.Popen([sys.executable, "-c", WRITER, results, "2", what], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 120
        while not _in_flight(s3, prefix, what):
            assert writer.poll() is None, f"the writer finished before it could be killed mid-upload ({what})"
            assert time.monotonic() < deadline, "the upload never started"
            time.sleep(0.02)
        os.killpg(writer.pid, signal.SIGKILL)
    finally:
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
    victim = make_spec(seed=2).trial_id

    fresh = Store(results)
    assert fresh.ok_trial_ids("llm_adapters/math") == {earlier.trial_id}
    assert len(fresh.read()) == 2 and set(fresh.read()["trial_id"]) == {earlier.trial_id}
    assert not fresh.has_adapter("llm_adapters/math", victim)
    visible = [k for k in keys(s3, prefix) if k.endswith(".parquet") and victim in k]
    if what == "predictions":
        assert visible == []
        with pytest.raises(FileNotFoundError):
            fresh.read_predictions("llm_adapters/math", victim, "gsm8k")
    else:  # its predictions were published before the adapter: no trial file, so no reader takes them for a result
        assert visible == [f"{prefix}llm_adapters__math/predictions/{victim}/gsm8k.parquet"]
    # The doctor names what the kill left (adapter files without their manifest), as an interrupted write.
    findings = diagnose(results)
    if what == "adapter":
        assert [f.kind for f in findings] == ["tmp"] and victim in findings[0].path
    else:
        assert findings == []  # an unfinished multipart upload is no object at all

    # The trial's next run stores it whole over whatever the kill left.
    again = ok_result(make_spec(seed=2))
    again.adapter_dir = str(tmp_path)
    (tmp_path / "shard-00.bin").write_bytes(b"trained")
    seal(tmp_path, {})
    fresh.write(again)
    assert Store(results).ok_trial_ids("llm_adapters/math") == {earlier.trial_id, victim}
    assert fresh.has_adapter("llm_adapters/math", victim)
    assert diagnose(results) == []


@pytest.mark.slow  # the shipped smoke suite itself: 12 trials at their real settings, minutes on 2 cores
def test_the_smoke_suite_runs_reports_and_resumes_on_s3(s3, tmp_path):
    results = f"s3://{BUCKET}/smoke"
    first = cli("run", "smoke", "--results", results, timeout=3600)
    assert first.returncode == 0 and "12 ok, 0 failed, 0 already stored" in first.stdout, first.stdout + first.stderr
    report = cli("report", "smoke", "--results", results, "--out", str(tmp_path))
    assert report.returncode == 0 and (tmp_path / "smoke" / "index.html").is_file(), report.stdout + report.stderr
    rerun = cli("run", "smoke", "--results", results)
    assert rerun.returncode == 0 and "0 ok, 0 failed, 12 already stored" in rerun.stdout, rerun.stdout + rerun.stderr
    doctor = cli("doctor", "--results", results)
    assert doctor.returncode == 0 and "0 problem(s)" in doctor.stdout, doctor.stdout
