"""The benchmarks' configs pass `crmkit check`: a benchmark that dies on a config
the checker has learned to refuse measures nothing (the synthetic configs once
kept a field named `tags` after the checker began refusing it)."""

from __future__ import annotations

from pathlib import Path

from bench import dataset, synthetic
from crmkit import loading


def test_the_synthetic_configs_of_the_config_load_benchmark_load(tmp_path: Path) -> None:
    root = synthetic.generate(tmp_path / "synthetic", 20)
    spec, _pm, _types = loading.load_config(root)
    assert len(spec.entities) >= 20


def test_the_benchmark_crm_loads() -> None:
    spec, _pm, _types = loading.load_config(dataset.CONFIG_DIR)
    assert "customer" in spec.entities


def test_the_in_process_benchmarks_configs_load(tmp_path: Path) -> None:
    from bench import automations, sweeps

    for name, module in (("automations", automations), ("sweeps", sweeps)):
        spec, _pm, _types = loading.load_config(module.config(tmp_path / name))
        assert spec.automations


def test_python_m_bench_offers_every_in_process_benchmark() -> None:
    from bench.__main__ import IN_PROCESS, parse_args

    assert set(IN_PROCESS) == {"rules", "tags", "ui_record", "jobs", "automations", "approvals", "pool", "sweeps"}
    assert parse_args(["--only", "sweeps,rules"]).selected == {"sweeps", "rules"}
    assert set(IN_PROCESS) <= parse_args([]).selected
