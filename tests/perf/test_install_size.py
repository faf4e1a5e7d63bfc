"""The install-size figure (`bench.install_size`): dependency closures resolved from installed
metadata, sized from each distribution's RECORD.

Known answers come from distributions written here (a dist-info directory with METADATA and
RECORD, the layout pip installs); the figure itself is checked on the project's venv for what
it promises (which libraries the agent leaves out), never for a number of megabytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.install_size import closure, figures, requirements_of

ROOT = Path(__file__).resolve().parents[2]


def _dist(site: Path, name: str, files: dict[str, bytes], requires: tuple[str, ...] = ()) -> None:
    """Install ``name`` 1.0 into ``site`` as pip would lay it out: its files, METADATA, RECORD."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    meta = [
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        *(f"Requires-Dist: {r}\n" for r in requires),
    ]
    (info / "METADATA").write_text("".join(meta))
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)
    record = [f"{rel},," for rel in files] + [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(record) + "\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site-packages"
    _dist(
        root,
        "ifx-top",
        {"ifx_top/__init__.py": b"x" * 1000},
        requires=(
            "ifx-lib>=1",
            "ifx-extra-only; extra == 'server'",
            "ifx-never; python_version < '3'",
        ),
    )
    _dist(root, "ifx-lib", {"ifx_lib/__init__.py": b"y" * 300, "ifx_lib/data.bin": b"z" * 700})
    _dist(root, "ifx-extra-only", {"ifx_extra_only.py": b"e" * 50})
    _dist(root, "ifx-never", {"ifx_never.py": b"n" * 50})
    monkeypatch.syspath_prepend(str(root))
    return root


def _metadata_bytes(site: Path, name: str) -> int:
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    return sum(p.stat().st_size for p in info.iterdir())


def test_a_closure_follows_requirements_and_sums_each_record(site: Path) -> None:
    found = closure(["ifx-top"])
    assert sorted(found.sizes) == ["ifx-lib", "ifx-top"]  # the extra's and the marker's left out
    assert found.sizes["ifx-lib"] == 1000 + _metadata_bytes(site, "ifx-lib")
    assert found.total_bytes == 2000 + _metadata_bytes(site, "ifx-lib") + _metadata_bytes(
        site, "ifx-top"
    )
    assert found.missing == ()


def test_an_extra_asked_for_pulls_in_its_requirements(site: Path) -> None:
    assert sorted(closure(["ifx-top[server]"]).sizes) == ["ifx-extra-only", "ifx-lib", "ifx-top"]


def test_a_requirement_not_installed_is_named_not_counted(site: Path) -> None:
    found = closure(["ifx-lib", "ifx-not-installed-anywhere>=2"])
    assert found.missing == ("ifx-not-installed-anywhere",)
    assert sorted(found.sizes) == ["ifx-lib"]


def test_a_file_gone_from_disk_counts_nothing(site: Path) -> None:
    (site / "ifx_lib" / "data.bin").unlink()
    assert closure(["ifx-lib"]).sizes["ifx-lib"] == 300 + _metadata_bytes(site, "ifx-lib")


def test_heavy_names_the_libraries_a_closure_holds(site: Path) -> None:
    assert closure(["ifx-top"]).heavy(["IFX_Lib", "ifx-never", "scipy"]) == ["IFX_Lib"]


def test_requirements_are_the_core_dependencies_without_extras() -> None:
    agent = requirements_of(ROOT / "agent" / "pyproject.toml")
    full = requirements_of(ROOT / "pyproject.toml")
    assert any(r.startswith("numpy") for r in agent)
    assert any(r.startswith("scipy") for r in full)
    assert not any(r.startswith(("moto", "pytest", "ruff")) for r in full)  # extras stay out
    with_local = requirements_of(ROOT / "pyproject.toml", ["local"])
    assert with_local[: len(full)] == full and any(
        r.startswith("moto") for r in with_local[len(full) :]
    )


def test_the_figure_says_the_agent_installs_none_of_the_heavy_libraries() -> None:
    (figure,) = figures()
    assert figure.met is True and figure.detail["heavy_in_agent"] == []
    assert {"scipy", "pandas", "matplotlib"} <= set(figure.detail["heavy_in_baseline"])
    assert 0 < figure.value < figure.baseline < figure.detail["baseline_with_local_extra_mb"]  # type: ignore[operator]
