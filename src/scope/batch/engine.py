"""Run a batch: plan one job per input, skip complete outputs, execute on Dask, report.

Execution
---------
- ``scheduler="tcp://host:8786"``: an existing Dask cluster (e.g. started by dask-jobqueue on
  SLURM/PBS, see docs/batch.md); the files must be visible to the workers at the same paths.
- otherwise a local Dask cluster of worker *processes* (one thread each), sized to the machine
  and listening on loopback only (``listen`` changes that), or — for a single small input, or
  ``n_workers=0`` — plain in-process execution with a per-set progress bar.
- with cupy and a GPU: ``dask_cuda.LocalCUDACluster`` (one worker per GPU) when dask-cuda is
  installed, else one GPU worker.

Robustness
----------
An output is complete when its final name exists and its ``.params.json`` is readable (every
writer writes under a hidden temporary name and renames at the end, after the ``.params.json``
is in place); see :mod:`scope.batch.resume`. Re-running skips complete outputs, redoes
incomplete ones and reports (keeps) outputs made with other settings as ``outdated``; stale
temporaries are removed under an output-folder lock. A bad input is
an ``error`` line in the report; the other files go on. Ctrl-C cancels what is running and
leaves every completed output intact (also while the local workers start; they never take
Ctrl-C themselves).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scope.batch.config import RESULT_SUFFIXES, BatchOptions, OutputOptions, given_pattern
from scope.batch.discovery import find_inputs, output_stems
from scope.batch.job import FileJob, process_file, software_version, widefield_path
from scope.batch.report import REPORT_JSON, BatchReport
from scope.batch.resume import examine_output, existing_entry
from scope.errors import ConfigurationError, ScopeError
from scope.io.writers import beside, prepare_output_folder

log = logging.getLogger(__name__)

LOCK_NAME = ".scope-batch.lock"
#: inputs up to this size in all run in-process unless workers are asked for: starting a
#: local Dask cluster takes several seconds (about 8 s on 2 cores, for two 120-pixel files that
#: reconstruct in 0.4 s each), about what this much raw data takes to reconstruct in-process
IN_PROCESS_MAX_BYTES = 256 * 2**20


def output_paths(outdir: Path, stem: str, fmt: str) -> tuple[Path, Path]:
    """The SIM result of the input ``stem`` in format ``fmt`` and its ``.params.json`` beside
    it (:func:`scope.io.writers.beside`, as ``scope reconstruct`` names it)."""
    out = outdir / f"{stem}{RESULT_SUFFIXES[fmt]}"
    return out, beside(out, ".params.json")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def outdir_lock(outdir: Path) -> Iterator[None]:
    """One batch per output folder; a lock left by a killed run is taken over."""
    lock = outdir / LOCK_NAME
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                host, pid = lock.read_text().split()
            except (OSError, ValueError):
                host, pid = "", "0"
            if host == socket.gethostname() and not _pid_alive(int(pid)):
                log.info("taking over the lock of a stopped batch (pid %s)", pid)
                lock.unlink(missing_ok=True)
                continue
            raise ConfigurationError(
                f"another scope batch ({host} pid {pid}) is writing to {outdir}; wait for it or "
                f"remove {lock} if it is gone"
            ) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def remove_stale_partials(outdir: Path) -> int:
    """Delete temporaries left by an interrupted run (we hold the folder lock)."""
    n = 0
    for p in outdir.glob(".*.partial-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    if n:
        log.info("removed %d unfinished outputs of an earlier run", n)
    return n


def _count_sets(src: Path, pattern: dict[str, Any]) -> tuple[int, int]:
    """(SIM sets, bytes) from the header only; (1, 0) when unreadable (the worker reports it)."""
    from scope.io.raw import open_sim_stack

    try:
        stack, _, _ = open_sim_stack(src, **pattern)
        with stack:
            return stack.n_sets, stack.n_sets * stack.set_nbytes
    except ScopeError:
        return 1, 0


def _gpu_count() -> int:
    from scope.backend import cupy_available

    if not cupy_available():
        return 0
    import cupy

    return int(cupy.cuda.runtime.getDeviceCount())


def check_listen(listen: str) -> None:
    """Refuse, in one line, an address a local Dask cluster could not listen on.

    Parameters
    ----------
    listen : str
        ``--listen``: an IP address or host name of this machine (``127.0.0.1``, ``0.0.0.0``,
        ``::1``, ``my-node``), optionally as ``tcp://HOST`` or with ``:PORT``.

    Raises
    ------
    ConfigurationError
        The name does not resolve, or names no interface of this machine (Dask would fail
        after starting its workers, with a long traceback).
    """
    scheme, _, location = listen.rpartition("://")
    if scheme not in ("", "tcp", "tls"):
        return  # another Dask transport (inproc, ucx ...): Dask checks its own addresses
    host, port = location, "0"
    if location.startswith("[") and "]" in location:  # [::1] or [::1]:8786
        host, _, rest = location[1:].partition("]")
        port = rest.removeprefix(":") or "0"
    elif location.count(":") == 1:  # host:port
        host, port = location.split(":")
    try:
        infos = socket.getaddrinfo(
            host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for i, (family, kind, proto, _, address) in enumerate(infos):  # one that binds will do
            try:
                with socket.socket(family, kind, proto) as probe:
                    probe.bind(address)
                break
            except OSError:
                if i == len(infos) - 1:
                    raise
    except (OSError, ValueError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigurationError(
            f"--listen {listen}: the local Dask cluster cannot listen there ({reason}); expected "
            "an IP address or host name of this machine: 127.0.0.1 (the default, this machine "
            "only), 0.0.0.0 (every interface) or one interface's address"
        ) from None


def _start_without_ctrl_c(start: Callable[[], Any]) -> Any:
    """Call ``start()``, which starts worker processes, so that Ctrl-C never reaches them but
    still stops this process, also while they start.

    ``start`` runs in a helper thread that blocks SIGINT: the threads it starts and the
    processes they start inherit the blocked signal (a blocked SIGINT is never delivered: the
    workers ignore Ctrl-C, sent by the terminal to the whole process group), while this
    process's main thread keeps taking it. Ctrl-C while the workers start waits for the start
    to end (a second Ctrl-C stops waiting), closes what it started and raises
    KeyboardInterrupt.

    Parameters
    ----------
    start : callable
        Starts the workers and returns a cluster (anything with ``close()``).

    Returns
    -------
    object
        What ``start`` returned.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        return start()
    from multiprocessing import resource_tracker

    # started later, by the first worker process, multiprocessing's resource tracker would
    # unblock SIGINT in the thread starting it (CPython's ensure_running blocks, then
    # unblocks, whatever the mask was), and the workers started after it would take Ctrl-C
    resource_tracker.ensure_running()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = start()
        except BaseException as err:  # handed to the caller
            outcome["error"] = err

    helper = threading.Thread(target=run, name="scope-batch-cluster-start", daemon=True)
    # the helper is born with SIGINT blocked (a Ctrl-C meanwhile waits for the unblock below)
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        helper.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    try:
        while helper.is_alive():
            helper.join(0.1)
    except KeyboardInterrupt:
        log.warning("interrupted while the Dask workers start: stopping them")
        helper.join()
        if "value" in outcome:
            outcome["value"].close()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _start_cluster(
    n_workers: int | None, n_jobs: int, listen: str, backend: str | None
) -> tuple[Any, str, int]:
    """A local Dask cluster on ``listen`` (loopback by default): (cluster, description, workers).

    Its worker processes ignore Ctrl-C (:func:`_start_without_ctrl_c`): Ctrl-C in the terminal
    reaches the whole process group, but only this process should act on it, cancelling the
    work and closing the cluster in order.
    """
    from distributed import LocalCluster

    gpus = _gpu_count() if backend in (None, "auto", "cupy") else 0
    if gpus:
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            n = 1
            log.info("one GPU worker (install dask-cuda for one worker per GPU)")
        else:
            log.info("starting a local CUDA cluster (one worker per GPU) on %s", listen)
            cluster = _start_without_ctrl_c(
                lambda: LocalCUDACluster(host=listen, dashboard_address=None)
            )
            return cluster, f"local CUDA cluster on {listen}", gpus
    else:
        n = n_workers or os.cpu_count() or 1
    n = max(1, min(n, n_jobs))
    log.info("starting a local Dask cluster of %d worker processes on %s", n, listen)
    cluster = _start_without_ctrl_c(
        lambda: LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host=listen,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            # one core per worker process: no BLAS/OpenMP thread pools fighting over the cores
            env={k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        )
    )
    return cluster, f"local Dask cluster on {listen}", n


def run_batch(
    inputs: Sequence[str | Path],
    outdir: str | Path,
    *,
    flags: BatchOptions | None = None,
    preset: BatchOptions | None = None,
    preset_name: str | None = None,
    output: OutputOptions | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    listen: str = "127.0.0.1",
    recursive: bool = False,
    progress: Callable[..., None] | None = None,
    on_plan: Callable[[int, int], None] | None = None,
) -> BatchReport:
    """Reconstruct many inputs into ``outdir``.

    Parameters
    ----------
    inputs : sequence
        Files, folders and glob patterns (see :func:`~scope.batch.discovery.discover_inputs`).
    outdir : path
        Output folder: ``NAME.sim.zarr`` (or ``NAME.sim.ome.tif``), ``NAME.params.json`` per
        input, ``batch-report.json`` and ``batch-report.txt``.
    flags, preset : BatchOptions
        Highest and second precedence (file metadata comes last).
    output : OutputOptions
        Format (zarr/tiff), multiscale levels, overwrite.
    scheduler : str, optional
        Address of an existing Dask scheduler.
    n_workers : int, optional
        Local worker processes (default: one per core; 0 runs in-process).
    listen : str
        Interface of the local cluster (default loopback only; see :func:`check_listen`).
    recursive : bool
        Descend into the sub-folders of folders; without it, the raw files they hold are
        counted and said (a warning and a note in the report).
    progress : callable, optional
        ``progress(files=, units=, failed=)`` increments (a :class:`ProgressBar` ``update``).
    on_plan : callable, optional
        Called with (files to do, total SIM sets) before the work starts.

    Returns
    -------
    BatchReport
        Also written into ``outdir``. ``report.exit_status`` is 3 when some files failed.

    Raises
    ------
    ConfigurationError
        Bad arguments (a negative ``n_workers``, a ``listen`` address that is not this
        machine's, no inputs ...), before anything is written.
    KeyboardInterrupt
        Ctrl-C, also while the workers start: the report (``interrupted``) is written and the
        cluster closed first.
    """
    flags = flags or BatchOptions()
    output = output or OutputOptions()
    outdir = Path(outdir)
    if n_workers is not None and n_workers < 0:
        raise ConfigurationError(
            f"--workers {n_workers}: expected a number of worker processes (1 or more), or 0 to "
            "reconstruct in this process without a Dask cluster; leave it out for one per core"
        )
    if scheduler is None and n_workers != 0:  # a local cluster may be started
        check_listen(listen)
    prepare_output_folder(outdir / REPORT_JSON)  # created and writable, or refused in one line
    t0 = time.perf_counter()
    report = BatchReport(
        outdir=str(outdir.resolve()),
        software=software_version(),
        scheduler="in-process",
        n_workers=1,
        started_utc=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    with outdir_lock(outdir):
        remove_stale_partials(outdir)
        discovery = find_inputs(inputs, recursive=recursive, exclude=[outdir])
        report.notes.extend(discovery.notes)
        sources = discovery.paths
        stems = output_stems(sources)
        pattern = given_pattern(flags, preset)
        jobs: list[FileJob] = []
        sizes: dict[str, tuple[int, int]] = {}
        for src in sources:
            out, params = output_paths(outdir, stems[src], output.format)
            if not output.overwrite and _keep_existing(
                src, out, params, report, flags, preset, output
            ):
                continue
            jobs.append(
                FileJob(
                    input=str(src),
                    output=str(out),
                    params_path=str(params),
                    flags=flags.model_dump(exclude_none=True),
                    preset=preset.model_dump(exclude_none=True) if preset else None,
                    preset_name=preset_name,
                    output_options=output.model_dump(),
                )
            )
            sizes[str(src)] = _count_sets(src, pattern)
        if report.count("skipped"):
            log.info("%d outputs already complete: skipped", report.count("skipped"))
        if on_plan is not None:
            on_plan(len(jobs), sum(s for s, _ in sizes.values()))
        try:
            if jobs:
                _execute(jobs, sizes, report, scheduler, n_workers, listen, flags, progress)
        except KeyboardInterrupt:
            report.interrupted = True
            done = {f["input"] for f in report.files}
            for job in jobs:
                if job.input in done:
                    continue
                if Path(job.output).exists():  # finished while the interrupt was handled
                    entry = existing_entry(Path(job.input), Path(job.output), Path(job.params_path))
                    report.files.append({**entry, "status": "done", "seconds": None})
                else:
                    report.files.append(
                        {
                            "input": job.input,
                            "output": job.output,
                            "status": "interrupted",
                            "error": None,
                        }
                    )
            raise
        finally:
            report.files.sort(key=lambda f: f["input"])
            report.seconds = time.perf_counter() - t0
            report.write(outdir)
    return report


def _keep_existing(
    src: Path,
    out: Path,
    params: Path,
    report: BatchReport,
    flags: BatchOptions,
    preset: BatchOptions | None,
    output: OutputOptions,
) -> bool:
    """Whether the output already at ``out`` stays (its report line is added): complete and
    made with these settings (``skipped``), or made with other settings (``outdated``, kept
    and said so). False: it is missing or incomplete and must be (re)done."""
    found = examine_output(
        out,
        params,
        flags=flags,
        preset=preset,
        widefield=widefield_path(out) if output.widefield else None,
    )
    if found.action == "redo":
        if out.exists():
            log.warning("%s: %s: redoing it", src.name, found.reason)
        return False
    entry = existing_entry(src, out, params, found.record)
    if found.action == "outdated":
        log.warning("%s: %s", src.name, found.reason)
        entry.update(status="outdated", note=found.reason, differences=found.differences)
    report.files.append(entry)
    return True


def _warn_about_priors(result: dict[str, Any]) -> None:
    """A warning for a file whose pattern came, in part or whole, from the priors."""
    used = result.get("angles_from_prior") or {}
    if used.get("count"):
        log.warning(
            "%s: %d of %d pattern angles were not found in the data and came from the priors "
            "(the preset's or --prior-angles): the result is only as right as they are; check "
            "the pattern, focus and the preset's optics",
            Path(result["input"]).name,
            used["count"],
            used["of"],
        )


def _execute(
    jobs: list[FileJob],
    sizes: dict[str, tuple[int, int]],
    report: BatchReport,
    scheduler: str | None,
    n_workers: int | None,
    listen: str,
    flags: BatchOptions,
    progress: Callable[..., None] | None,
) -> None:
    def record(result: dict[str, Any]) -> None:
        _warn_about_priors(result)
        report.files.append(result)
        if progress is not None:
            failed = result["status"] == "error"
            units = 0 if failed else sizes.get(result["input"], (1, 0))[0]
            progress(files=1, units=units, failed=int(failed))

    small = sum(sizes[job.input][1] for job in jobs) <= IN_PROCESS_MAX_BYTES
    if scheduler is None and (n_workers == 0 or (small and not n_workers)):
        report.scheduler, report.n_workers = "in-process", 1
        for job in jobs:
            done_units = [0]

            def per_set(n: int, done_units: list[int] = done_units) -> None:
                if progress is not None:
                    progress(units=n - done_units[0])
                done_units[0] = n

            result = process_file(job, per_set)
            if progress is not None:
                # per-set progress was already counted: only the file (and a failure) remain
                progress(files=1, failed=int(result["status"] == "error"))
            _warn_about_priors(result)
            report.files.append(result)
        return

    from distributed import Client

    if log.getEffectiveLevel() > logging.DEBUG:  # distributed's import resets its loggers
        logging.getLogger("distributed").setLevel(logging.WARNING)

    with contextlib.ExitStack() as stack:  # closed in reverse order: client, then cluster
        if scheduler:
            client = stack.enter_context(Client(scheduler, timeout="30s"))
            report.scheduler = f"Dask scheduler {scheduler}"
            report.n_workers = len(client.scheduler_info().get("workers", {}))
        else:
            cluster, report.scheduler, report.n_workers = _start_cluster(
                n_workers, len(jobs), listen, flags.backend
            )
            stack.callback(cluster.close)
            client = stack.enter_context(Client(cluster))
        _run_on(client, jobs, report, scheduler, record)


def _run_on(
    client: Any,
    jobs: list[FileJob],
    report: BatchReport,
    scheduler: str | None,
    record: Callable[[dict[str, Any]], None],
) -> None:
    """Submit the jobs to ``client``, ``record`` each result; cancel what is left on the way
    out (Ctrl-C)."""
    from distributed import as_completed

    info = client.scheduler_info()
    report.addresses = {
        "scheduler": info.get("address"),
        "workers": sorted(info.get("workers", {})),
    }
    log.info("running %d files on %s (%d workers)", len(jobs), report.scheduler, report.n_workers)
    if not scheduler or report.n_workers > 1:
        # one single-threaded FFT per worker process (the workers share the cores)
        jobs = [dataclasses.replace(job, fft_workers=1) for job in jobs]
    futures: dict[Any, FileJob] = {}
    try:
        for i, job in enumerate(jobs):
            key = f"scope-batch-{i}-{Path(job.input).name}"
            futures[client.submit(process_file, job, key=key, pure=False)] = job
        for future in as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
            except Exception as err:  # the worker died (killed, out of memory ...)
                result = {
                    "input": job.input,
                    "output": job.output,
                    "status": "error",
                    "error": f"worker failed: {type(err).__name__}: {err}".splitlines()[0],
                }
            record(result)
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending, force=True)
