"""The analysis on Dask, on real photos: a real LocalCluster (results equal the in-process pool's,
models loaded once per worker, a worker killed mid-run has its tasks run again), and the
README's cluster commands (`dask scheduler`, `dask worker`, `anfe build --scheduler ... --cache
mongodb://...`) run as written, as subprocesses."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from anfe.faces.analysis import ImageAnalysis
from anfe.faces.batch import analyse_paths
from anfe.faces.cache import SQLiteCache
from anfe.core.config import AnalysisParams
from anfe.faces.executor import DaskExecutor, PoolExecutor

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def balanced(rows: list[dict]) -> list[dict]:
    """16 UTKFace photos of each gender."""
    return [r for r in rows if r["gender"] == "female"][:16] + [r for r in rows if r["gender"] == "male"][:16]


@pytest.fixture(scope="module")
def photos(utkface_rows) -> list[Path]:
    """32 UTKFace photos, both genders."""
    return [Path(r["path"]) for r in balanced(utkface_rows)]


@pytest.fixture(scope="module")
def reference(photos) -> dict[str, ImageAnalysis]:
    """The in-process analysis (one process here), to compare against."""
    results, _ = analyse_paths(photos, AnalysisParams(), None, PoolExecutor(1), progress=False)
    return results


def assert_same(a: dict[str, ImageAnalysis], b: dict[str, ImageAnalysis]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        assert (x.content_hash, x.width, x.height, x.phash, x.error) == (y.content_hash, y.width, y.height, y.phash, y.error)
        assert [f.box for f in x.faces] == [f.box for f in y.faces]
        for fx, fy in zip(x.faces, y.faces):
            assert np.array_equal(fx.embedding, fy.embedding)


class CountingCache(SQLiteCache):
    """A real cache file that also counts how many times each image's result is written."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.writes: dict[str, int] = {}

    def put_many(self, analyses) -> None:
        analyses = list(analyses)
        for a in analyses:
            self.writes[a.content_hash] = self.writes.get(a.content_hash, 0) + 1
        super().put_many(analyses)


def test_dask_results_equal_the_pools_and_each_worker_loads_the_models_once(photos, reference, tmp_path):
    with DaskExecutor("local", workers=2) as executor:
        assert executor.processes == 2
        with CountingCache(tmp_path / "c.sqlite", AnalysisParams().cache_key) as cache:
            results, stats = analyse_paths(photos, AnalysisParams(), cache, executor, progress=False)
            assert stats.analysed == len(photos) and len(cache) == len(photos)
            assert set(cache.writes.values()) == {1}
        assert_same(results, reference)
        loads = executor.client.run(lambda: __import__("anfe.faces.detection").faces.detection.models.cache_info().misses)
        assert len(loads) == 2 and set(loads.values()) == {1}, loads  # both worked, each loaded once
        again, stats = analyse_paths(photos, AnalysisParams(), SQLiteCache(tmp_path / "c.sqlite",
                                                                           AnalysisParams().cache_key),
                                     executor, progress=False)
        assert stats.cached == len(photos) and stats.analysed == 0


def _executing(dask_worker) -> list[str]:
    """The keys a worker is running right now (Dask passes the worker in)."""
    return [str(key) for key, task in dask_worker.state.tasks.items() if task.state == "executing"]


def test_a_killed_worker_has_its_tasks_run_again_and_every_image_is_analysed_once(photos, reference, tmp_path):
    with DaskExecutor("local", workers=2) as executor:
        client = executor.client
        pids = client.run(os.getpid)
        killed: list[tuple[int, str]] = []  # (pid, the key it was running)

        def kill_a_busy_worker() -> None:
            """SIGKILL the first worker seen running a task (its state, not a guess at the time)."""
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                busy = [(address, keys) for address, keys in client.run(_executing).items() if keys]
                if busy:
                    address, keys = busy[0]
                    os.kill(pids[address], signal.SIGKILL)
                    killed.append((pids[address], keys[0]))
                    return
                time.sleep(0.02)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        with CountingCache(tmp_path / "c.sqlite", AnalysisParams().cache_key) as cache:
            results, stats = analyse_paths(photos, AnalysisParams(), cache, executor, progress=False)
            writes = dict(cache.writes)
        killer.join()
        assert killed, "no worker was killed"
        pid, key = killed[0]
        # The task it was running was sent to a worker twice: run again after the kill.
        story = client.run_on_scheduler(lambda dask_scheduler: [list(map(str, e[:3])) for e in dask_scheduler.story(key)])
        assert sum(1 for _key, _start, finish in story if finish == "processing") >= 2, story
        assert stats.analysed == len(photos) and stats.unreadable == 0
        assert all(not a.error for a in results.values())
        assert sorted(writes) == sorted({a.content_hash for a in reference.values()})
        assert set(writes.values()) == {1}  # each image's result came back (and was written) once
        assert_same(results, reference)
        alive = client.run(os.getpid)
        assert pid not in alive.values()


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_the_readme_cluster_commands(photos, reference, utkface_rows, mongodb_database_uri, tmp_path):
    """`dask scheduler`, `dask worker`, then `anfe build --scheduler ... --cache mongodb://...`,
    as the README's "On several machines" gives them (on loopback ports)."""
    from testkit.redis_server import free_port

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    logs = tmp_path / "logs"
    logs.mkdir()
    scheduler = subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], env=env, stdout=(logs / "s.log").open("wb"),
                                 stderr=subprocess.STDOUT, start_new_session=True)
    worker = subprocess.Popen(["dask", "worker", address, "--nworkers", "2", "--nthreads", "1",
                               "--no-dashboard"], env=env, stdout=(logs / "w.log").open("wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        from distributed import Client

        _wait_for(lambda: (logs / "s.log").read_text().count("Scheduler at") > 0, 60, "the scheduler")
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        labels = tmp_path / "labels.csv"
        rows = balanced(utkface_rows)
        with labels.open("w", newline="") as handle:
            out = csv.DictWriter(handle, fieldnames=list(rows[0]))
            out.writeheader()
            out.writerows(rows)
        command = [sys.executable, "-m", "anfe", "build", str(labels), "--sizes", "5", "--test-fraction", "0.3",
                   "--scheduler", address, "--cache", mongodb_database_uri,
                   "--db", f"sqlite:///{tmp_path / 'catalog.sqlite'}"]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "g_5" in done.stdout
        from anfe.faces.cache import AnalysisCache

        with AnalysisCache(mongodb_database_uri, AnalysisParams().cache_key) as cache:
            assert len(cache) == len(rows)
            assert_same({str(p): cache.get(reference[str(p)].content_hash) for p in photos}, reference)
        # a second client finds everything in the shared cache
        again = subprocess.run([*command[:5], "--sizes", "6", *command[7:]], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
    finally:
        for process in (worker, scheduler):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (worker, scheduler):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_cli_scheduler_local_and_an_unreachable_scheduler(tmp_path, photos, monkeypatch):
    """`--scheduler local` (a LocalCluster of --workers processes) and $ANFE_SCHEDULER; an address
    nobody answers at is one line."""
    from click.testing import CliRunner
    from testkit.redis_server import free_port

    from anfe.cli.app import cli

    folder = tmp_path / "photos" / "female"
    folder.mkdir(parents=True)
    for photo in photos[:6]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    cache = tmp_path / "c.sqlite"
    result = CliRunner().invoke(cli, ["analyze", str(tmp_path / "photos"), "--scheduler", "local", "--workers", "2",
                                      "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    assert "6 images: 0 from cache, 6 analysed now" in result.output
    monkeypatch.setenv("ANFE_SCHEDULER", f"tcp://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(cli, ["analyze", str(photos[0])])
    assert result.exit_code == 1
    assert "cannot reach the Dask scheduler" in result.output and "Traceback" not in result.output
