"""A store that existed is never silently replaced by an empty one; a read-only store still
reads."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import StateError
from orchestrator.store import BaseVersion, SqliteStore, utcnow


def base(version: int = 1) -> BaseVersion:
    return BaseVersion(
        "web",
        version,
        {"us-east-1": f"ami-{version:08x}"},
        "ami-src00001",
        None,
        f"bake-{version}",
        utcnow(),
        "bash\t5.2\n",
    )


def test_a_deleted_store_is_an_error_with_a_hint_not_a_new_empty_store(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(path).put_base(base())
    path.unlink()
    with pytest.raises(StateError) as err:
        SqliteStore(path)
    assert "is missing" in err.value.message and "restore it from a backup" in (
        err.value.hint or ""
    )
    assert not path.exists()  # nothing was created in its place


def test_a_replaced_store_is_refused(tmp_path: Path) -> None:
    path, other = tmp_path / "state.db", tmp_path / "elsewhere" / "state.db"
    first, second = SqliteStore(path), SqliteStore(other)
    first.put_base(base())
    first.close()
    second.close()  # the last connection checkpoints the WAL into the file
    shutil.copy(other, path)
    with pytest.raises(StateError, match="was replaced"):
        SqliteStore(path)


def test_deleting_the_store_mid_command_stops_the_next_write_loudly(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.put_base(base(1))
    for f in tmp_path.glob("state.db*"):
        if not f.name.endswith(".id"):
            f.unlink()
    with pytest.raises(StateError, match="removed or replaced while this command ran"):
        store.put_base(base(2))


def test_deleting_the_identity_file_adopts_the_store_on_purpose(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStore(path).put_base(base())
    path.unlink()
    (tmp_path / "state.db.id").unlink()
    assert SqliteStore(path).bases() == []


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A writable directory and a read-only bind mount of it (root can write anything else)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    bound = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True, check=False)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.decode().strip()}")
    try:
        remount = subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(ro)], capture_output=True, check=False
        )
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remount.stderr.decode().strip()}")
        yield src, ro
    finally:
        subprocess.run(["umount", "--lazy", str(ro)], check=False)


def test_read_only_store_serves_reads_and_refuses_writes_cleanly(
    read_only_dir: tuple[Path, Path],
) -> None:
    src, ro = read_only_dir
    writer = SqliteStore(src / "state.db")
    writer.put_base(base(1))
    writer.move_pointer("web", "candidate", 1, action="promote", actor="me", reason="")
    writer.close()
    reader = SqliteStore(ro / "state.db")
    assert reader.readonly
    assert [b.ref for b in reader.bases()] == ["web:1"] and reader.pointer("web", "candidate") == 1
    with pytest.raises(StateError, match="read-only"):
        reader.put_base(base(2))
    reader.close()
