"""Beam runner choice from a params section, and running a pipeline to completion.

The ``runner`` mapping of a stage's params::

    runner: direct           # FnApiRunner, multi_processing, `workers` SDK worker processes (default)
    runner: direct-inmemory  # FnApiRunner in this process (fast to start, single core)
    runner: direct-threads   # FnApiRunner, multi_threading: `workers` threads in this process (no
                             # per-worker start-up; the parallel work must release the GIL, as torch does)
    runner: dask             # DaskRunner on `dask_address`, or on a local cluster of `workers` processes
    runner: <AnyRunner>      # passed through as --runner=<AnyRunner>
    workers: 2               # default os.cpu_count()
    dask_address: tcp://…    # dask only: an existing scheduler
                             # dask: --dask_npartitions defaults to 4 × workers
    options: {key: value}    # extra pipeline flags: --key=value (True → --key, False → omitted, list → repeated)

Properties of Beam 2.77's DaskRunner (checked against its source and by
running it) that shape every job of this project:

* it drops whatever a DoFn emits from ``finish_bundle`` (batch inside
  ``process()``, write shards after a GroupByKey: :mod:`pipeline.beam.shards`);
* it computes only the *last* transform applied to the pipeline, so a branch
  that does not feed it never runs, silently. End every pipeline with
  :func:`join_branches` over all of its sinks;
* a multi-output ParDo (``with_outputs``/``TaggedOutput``) hands *every*
  output, of all tags, to each consumer of any one tag. Emit ``(tag, value)``
  pairs on the main output and split them with filters instead;
* it calls ``setup()`` once per Dask partition rather than once per worker:
  cache expensive resources per process (see :func:`pipeline.nouns.job.shared_nlp`);
* it is not among Beam's short runner names: ``--runner`` takes its qualified name;
* it offers no metrics (``result.metrics()`` raises): count from the outputs.

The ``direct*`` runners are Beam's FnApiRunner, built here as Beam's DirectRunner builds
it. The DirectRunner itself (2.77) first tries the Prism runner, a Go binary it downloads
from GitHub at run time: offline the download fails and it falls back to the FnApiRunner,
leaving an empty ``beam-temp*`` folder in the temp dir on every run; online the job runs
on Prism, in this process (``LOOPBACK``), whatever ``direct_running_mode`` and
``direct_num_workers`` say. The engine would depend on the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.runners.runner import PipelineRunner, PipelineState

from core.params import check_keys

LOG = logging.getLogger(__name__)

RUNNER_KEYS = frozenset({"runner", "workers", "dask_address", "options"})
DEFAULT_RUNNER = "direct"
DIRECT_RUNNERS = frozenset({"direct", "direct-threads", "direct-inmemory"})
# Not in Beam's list of short runner names: it must be given by its qualified name.
DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# Beam's default of 128 elements per Dask partition makes thousands of shuffle tasks
# for small elements (10,000 captions: 2.3x slower than 8 partitions on 2 workers).
DASK_PARTITIONS_PER_WORKER = 4


def _workers(runner_cfg: Mapping[str, Any]) -> int:
    workers = runner_cfg.get("workers")
    if workers is None:
        return os.cpu_count() or 1
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"runner 'workers' must be a positive integer, got {workers!r}")
    return workers


def _flags(options: Mapping[str, Any]) -> list[str]:
    flags: list[str] = []
    for key in sorted(options):
        value = options[key]
        if value is True:
            flags.append(f"--{key}")
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            flags.extend(f"--{key}={item}" for item in value)
        else:
            flags.append(f"--{key}={value}")
    return flags


def _check(runner_cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    cfg = dict(runner_cfg or {})
    check_keys(cfg, RUNNER_KEYS, "runner")
    if not isinstance(cfg.get("options", {}), Mapping):
        raise ValueError("runner 'options' must be a mapping of flag names to values")
    runner = cfg.get("runner", DEFAULT_RUNNER)
    if not isinstance(runner, str) or not runner:
        raise ValueError(f"runner name must be a non-empty string, got {runner!r}")
    cfg["runner"] = runner
    if "dask_address" in cfg and runner != "dask":
        raise ValueError(f"'dask_address' is only meaningful with runner: dask (runner is {runner!r})")
    return cfg


def make_pipeline_options(runner_cfg: Mapping[str, Any] | None) -> PipelineOptions:
    """Pipeline options for a runner mapping (module docstring).

    ``runner: dask`` needs ``dask_address`` here; to start a local cluster use
    :func:`pipeline_options`, which owns its lifetime.
    """
    cfg = _check(runner_cfg)
    runner = cfg["runner"]
    extra = _flags(cfg.get("options", {}))
    if runner == "direct":
        flags = [
            "--runner=DirectRunner",
            "--direct_running_mode=multi_processing",
            f"--direct_num_workers={_workers(cfg)}",
            # SDK worker processes otherwise log every control-plane step at INFO.
            "--default_sdk_harness_log_level=WARNING",
        ]
    elif runner == "direct-threads":
        flags = [
            "--runner=DirectRunner",
            "--direct_running_mode=multi_threading",
            f"--direct_num_workers={_workers(cfg)}",
        ]
    elif runner == "direct-inmemory":
        flags = ["--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
    elif runner == "dask":
        address = cfg.get("dask_address")
        if not address:
            raise ValueError(
                "runner: dask without 'dask_address' needs a local cluster: use pipeline_options(), "
                "which starts and closes one"
            )
        flags = [f"--runner={DASK_RUNNER}", f"--dask_client_address={address}"]
        options = cfg.get("options", {})
        if "dask_npartitions" not in options and "dask_partition_size" not in options:
            flags.append(f"--dask_npartitions={DASK_PARTITIONS_PER_WORKER * _workers(cfg)}")
    else:
        flags = [f"--runner={runner}"]
    return PipelineOptions(flags + extra)


@contextlib.contextmanager
def local_dask_cluster(workers: int, log_level: int = logging.WARNING) -> Iterator[str]:
    """A local ``dask.distributed`` cluster of ``workers`` single-threaded processes; yields its address.

    Its scheduler, nannies and workers log at ``log_level`` and above (distributed's
    default is INFO, several lines per task state change); the level of the
    ``distributed`` logger is restored afterwards, but the nanny leaves
    ``DASK_LOGGING__DISTRIBUTED`` set in this process's environment.
    """
    import dask

    # Imported before dask.config.set: importing distributed inside it registers its config
    # defaults under "distributed", a key the set() then removes whole on exit, and the next
    # cluster of this process fails (KeyError 'comm').
    from distributed import LocalCluster

    level = logging.getLevelName(log_level).lower()
    # Each spawned worker process sets its log levels from the environment the nanny
    # gives it; this process's "distributed" logger is set below.
    with dask.config.set(
        {"logging.distributed": level, "distributed.nanny.pre-spawn-environ.DASK_LOGGING__DISTRIBUTED": level}
    ):
        logger = logging.getLogger("distributed")
        previous = logger.level
        logger.setLevel(log_level)
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=log_level
        )
        try:
            LOG.info("started a local Dask cluster of %d workers at %s", workers, cluster.scheduler_address)
            yield cluster.scheduler_address
        finally:
            cluster.close()
            logger.setLevel(previous)


@contextlib.contextmanager
def pipeline_options(runner_cfg: Mapping[str, Any] | None) -> Iterator[PipelineOptions]:
    """:func:`make_pipeline_options`, starting (and afterwards closing) a local Dask cluster
    for ``runner: dask`` without ``dask_address``."""
    cfg = _check(runner_cfg)
    if cfg["runner"] == "dask" and not cfg.get("dask_address"):
        with local_dask_cluster(_workers(cfg)) as address:
            yield make_pipeline_options({**cfg, "dask_address": address})
    else:
        yield make_pipeline_options(cfg)


def join_branches(branches: Sequence[beam.PCollection], label: str = "JoinBranches") -> beam.PCollection:
    """One PCollection that depends on every branch: apply it last, so that the
    DaskRunner (which computes only the last transform) runs every branch.
    Each element is a ``(branch index, element)`` pair."""
    if not branches:
        raise ValueError("join_branches needs at least one PCollection")
    tagged = [
        branch | f"{label}Tag{index}" >> beam.Map(lambda element, index=index: (index, element))
        for index, branch in enumerate(branches)
    ]
    return tagged | f"{label}Flatten" >> beam.Flatten()


def fn_api_runner(options: PipelineOptions) -> PipelineRunner:
    """The FnApiRunner that runs the ``direct*`` runners (module docstring), its SDK
    workers provisioned with ``options`` as the DirectRunner provisions them."""
    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(provision))


def run_pipeline(build: Callable[[beam.Pipeline], None], runner_cfg: Mapping[str, Any] | None) -> None:
    """Build a pipeline with ``build(pipeline)``, run it on the configured runner and wait.

    Raises ``RuntimeError`` when the pipeline does not finish in state DONE. The
    Dask client the DaskRunner opens is closed afterwards.
    """
    with pipeline_options(runner_cfg) as options:
        direct = _check(runner_cfg)["runner"] in DIRECT_RUNNERS
        pipeline = beam.Pipeline(runner=fn_api_runner(options) if direct else None, options=options)
        build(pipeline)
        result = pipeline.run()
        try:
            state = result.wait_until_finish()
        finally:
            client = getattr(result, "client", None)
            if client is not None:
                client.close()
        if state != PipelineState.DONE:
            raise RuntimeError(f"Beam pipeline ended in state {state}")
