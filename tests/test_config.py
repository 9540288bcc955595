"""Configuration: the shipped sample is what oslo-config-generator produces today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from oslo_config import cfg

from annals import config

ROOT = Path(__file__).parent.parent


def test_sample_config_is_current(tmp_path: Path) -> None:
    out = tmp_path / "annals.conf.sample"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "oslo_config.generator",
            "--namespace",
            "annals",
            "--wrap-width",
            "79",
            "--output-file",
            str(out),
        ],
        check=True,
    )
    shipped = (ROOT / "etc" / "annals.conf.sample").read_text()
    assert out.read_text() == shipped, (
        "etc/annals.conf.sample is stale: run "
        "'oslo-config-generator --config-file etc/annals-config-generator.conf'"
    )


def test_panko_option_names_and_defaults() -> None:
    conf = config.load([])
    assert conf.api.default_api_return_limit == 100
    assert conf.api.max_api_return_limit == 10000
    assert conf.api.port == 8977
    assert conf.api.host == "127.0.0.1"
    assert conf.api.auth_mode == "noauth"
    assert conf.database.connection is None


def test_default_database_is_sqlite_in_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANNALS_DATA_DIR", str(tmp_path / "data"))
    url = config.database_url(config.load([]))
    assert url == f"sqlite:///{tmp_path / 'data' / 'annals.sqlite'}"
    assert (tmp_path / "data").is_dir()


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigFilesNotFoundError):
        config.load([str(tmp_path / "nope.conf")])


def test_bad_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_text("[api]\nauth_mode = magic\n")
    conf = config.load([str(path)])
    with pytest.raises(ValueError):
        _ = conf.api.auth_mode
