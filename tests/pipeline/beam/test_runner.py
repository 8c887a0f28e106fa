"""pipeline.beam.runner: options per runner name, the local Dask cluster, and the Dask traps it guards."""

from __future__ import annotations

import os
import tempfile

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions
from apache_beam.runners.dask.dask_runner import DaskOptions

from pipeline.beam.runner import DASK_RUNNER, join_branches, make_pipeline_options, pipeline_options, run_pipeline


def test_direct_is_multi_processing_with_the_configured_workers():
    options = make_pipeline_options({"runner": "direct", "workers": 3})
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    direct = options.view_as(DirectOptions)
    assert direct.direct_running_mode == "multi_processing"
    assert direct.direct_num_workers == 3


def test_direct_defaults_to_one_worker_per_cpu():
    options = make_pipeline_options(None)
    assert options.view_as(DirectOptions).direct_num_workers == (os.cpu_count() or 1)


def test_direct_inmemory():
    options = make_pipeline_options({"runner": "direct-inmemory"})
    assert options.view_as(DirectOptions).direct_running_mode == "in_memory"


def test_direct_threads():
    options = make_pipeline_options({"runner": "direct-threads", "workers": 3}).view_as(DirectOptions)
    assert options.direct_running_mode == "multi_threading" and options.direct_num_workers == 3


def test_dask_with_an_address():
    options = make_pipeline_options({"runner": "dask", "dask_address": "tcp://10.0.0.1:8786"})
    assert options.view_as(StandardOptions).runner == DASK_RUNNER
    assert options.view_as(DaskOptions).address == "tcp://10.0.0.1:8786"


def test_dask_partitions_default_to_four_per_worker_unless_set():
    options = make_pipeline_options({"runner": "dask", "dask_address": "tcp://h:1", "workers": 2})
    assert options.view_as(DaskOptions).npartitions == 8
    options = make_pipeline_options(
        {"runner": "dask", "dask_address": "tcp://h:1", "workers": 2, "options": {"dask_partition_size": 64}}
    )
    assert options.view_as(DaskOptions).npartitions is None
    assert options.view_as(DaskOptions).partition_size == 64


def test_dask_without_an_address_needs_the_context_manager():
    with pytest.raises(ValueError, match="pipeline_options"):
        make_pipeline_options({"runner": "dask"})


def test_other_runner_and_extra_options_pass_through():
    options = make_pipeline_options(
        {"runner": "FlinkRunner", "options": {"parallelism": 4, "flink_master": "[local]", "save_main_session": True}}
    )
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    assert options.get_all_options(retain_unknown_options=True)["parallelism"] == 4


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"runner": "direct", "threads": 2}, r"runner: unknown keys \[.threads.\]"),
        ({"runner": "direct", "workers": 0}, "positive integer"),
        ({"runner": "direct", "dask_address": "tcp://x:1"}, "only meaningful"),
        ({"runner": ""}, "non-empty string"),
        ({"runner": "direct", "options": ["--x"]}, "mapping"),
    ],
)
def test_bad_settings_are_refused(cfg, message):
    with pytest.raises(ValueError, match=message):
        make_pipeline_options(cfg)


class _Record(beam.DoFn):
    """Writes a marker file per element, so a test sees which branches ran (on any runner)."""

    def __init__(self, directory: str, name: str):
        self._directory = directory
        self._name = name

    def process(self, element):
        with open(os.path.join(self._directory, f"{self._name}-{element}"), "w"):
            pass
        yield element


def _branches(directory: str, join: bool):
    def build(pipeline):
        numbers = pipeline | beam.Create(list(range(5)))
        first = numbers | "First" >> beam.ParDo(_Record(directory, "first"))
        second = numbers | "Second" >> beam.ParDo(_Record(directory, "second"))
        if join:
            join_branches([first, second])

    return build


def test_join_branches_on_the_direct_runner(tmp_path):
    run_pipeline(_branches(str(tmp_path), join=True), {"runner": "direct-inmemory"})
    assert len(list(tmp_path.iterdir())) == 10


@pytest.mark.parametrize("runner", ["direct-inmemory", "direct-threads", "direct"])
def test_direct_runners_never_try_prism(runner, tmp_path, monkeypatch):
    """Beam's DirectRunner would download and run Prism where the network allows, and leaves
    an empty beam-temp* folder in the temp dir when it cannot."""
    from apache_beam.runners.portability import prism_runner

    tried = []
    run_on_prism = prism_runner.PrismRunner.run_pipeline

    def record(*args, **kwargs):
        tried.append(True)
        return run_on_prism(*args, **kwargs)

    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", record)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    out = tmp_path / "out"
    out.mkdir()
    run_pipeline(_branches(str(out), join=True), {"runner": runner, "workers": 2})
    assert len(list(out.iterdir())) == 10
    assert not tried
    assert [p.name for p in temp.iterdir() if p.name.startswith("beam-temp")] == []


def test_dask_runs_only_the_last_branch_unless_joined(tmp_path):
    """Documents the DaskRunner trap join_branches exists for (local cluster of 2 workers)."""
    unjoined, joined = tmp_path / "unjoined", tmp_path / "joined"
    unjoined.mkdir()
    joined.mkdir()
    with pipeline_options({"runner": "dask", "workers": 2}) as options:
        address = options.view_as(DaskOptions).address
        run_pipeline(_branches(str(unjoined), join=False), {"runner": "dask", "dask_address": address})
        run_pipeline(_branches(str(joined), join=True), {"runner": "dask", "dask_address": address})
    assert sorted(p.name for p in unjoined.iterdir()) == [f"second-{i}" for i in range(5)]
    assert len(list(joined.iterdir())) == 10


@pytest.mark.slow
def test_local_dask_clusters_one_after_another(tmp_path):
    """A second local cluster in the same process starts: the first left dask's config whole."""
    for attempt in ("first", "second"):
        out = tmp_path / attempt
        out.mkdir()
        run_pipeline(_branches(str(out), join=True), {"runner": "dask", "workers": 1})
        assert len(list(out.iterdir())) == 10, attempt
