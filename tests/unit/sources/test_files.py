"""The file source without a broker: landing roots, options, settling, positions, archive/done."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from atlas_stream.contracts import load_contracts
from atlas_stream.errors import ConfigError, ContractError
from atlas_stream.settings import Settings
from atlas_stream.sources.interface import OutRecord
from atlas_stream.sources.checkpoint import parse_position
from atlas_stream.sources.interface import source_key_fields
from atlas_stream.sources.files.options import landing_for
from atlas_stream.sources.files import FileSource
from atlas_stream.sources.files import build_file_sources

CONTRACTS = Path(__file__).resolve().parents[2] / "integration" / "contracts_fs"


def _contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Any = None) -> Any:
    monkeypatch.setenv("ATLAS_LANDING_DIR", str(tmp_path / "landing"))
    doc = json.loads((CONTRACTS / "itest_fs.json").read_text())
    doc["source_config"]["settle_seconds"] = 0
    if edit:
        edit(doc)
    (tmp_path / "meta").mkdir(exist_ok=True)
    (tmp_path / "meta" / "itest_fs.json").write_text(json.dumps(doc))
    return load_contracts(tmp_path / "meta")[0]


def _source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dataset: str = "orders", edit: Any = None,
            once: bool = True) -> FileSource:
    (source, _), = build_file_sources(_contract(tmp_path, monkeypatch, edit), Settings(), dataset, once=once)
    assert isinstance(source, FileSource)
    return source


async def _drive(source: FileSource, position: Any = None) -> tuple[list[OutRecord], Any]:
    """Play the runner: every batch is 'published' and 'checkpointed' at once."""
    out: list[OutRecord] = []
    async for batch in source.poll(position):
        batch.sent_dead = sum(r.dead for r in batch.records)
        batch.sent_rows = len(batch.records) - batch.sent_dead
        out += batch.records
        position = json.loads(json.dumps(batch.position))  # what a checkpoint would hold
    return out, position


def _drive_sync(source: FileSource, position: Any = None) -> tuple[list[OutRecord], Any]:
    return asyncio.run(_drive(source, position))


# ---------------------------------------------------------------------- landing roots

def test_the_landing_root_is_the_folder_before_the_first_glob(tmp_path: Path) -> None:
    (tmp_path / "in" / "a").mkdir(parents=True)
    assert landing_for("in/a/*.csv", cwd=tmp_path) == landing_for(str(tmp_path / "in" / "a" / "*.csv"))
    landing = landing_for("in/**/x*.csv", "done", cwd=tmp_path)
    assert landing.root == (tmp_path / "in").resolve() and landing.pattern == "**/x*.csv"
    assert landing.archive == (tmp_path / "in" / "done").resolve() and landing.in_archive("done/b/x1.csv")
    assert not landing.in_archive("a/x1.csv")
    for folder in (landing_for("in/a", cwd=tmp_path), landing_for("in/later", cwd=tmp_path),
                   landing_for("in/later.d/", cwd=tmp_path)):
        assert folder.root.parent == (tmp_path / "in").resolve() and folder.pattern == "*"
    single = landing_for("in/a/one[1].csv", cwd=tmp_path)  # a glob in the file name
    assert single.root == (tmp_path / "in" / "a").resolve()
    (tmp_path / "in" / "a" / "f.csv").write_text("x\n")
    one = landing_for("in/a/f.csv", cwd=tmp_path)
    assert one.root == (tmp_path / "in" / "a").resolve() and one.pattern == "f.csv"


def test_dot_dot_after_the_root_and_archives_outside_it_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"'\.\.' after a glob character"):
        landing_for("in/*/../../etc/*.csv", cwd=tmp_path, file="c.json", path_at="$.x")
    for archive in ("../elsewhere", "/tmp/abs", ".", "a/../.."):
        with pytest.raises(ContractError, match="must be a folder under the landing root"):
            landing_for("in/*.csv", archive, cwd=tmp_path)
    # '..' before the first glob character is part of the root the operator chose.
    assert landing_for("in/../other/*.csv", cwd=tmp_path).root == (tmp_path / "other").resolve()


def test_files_that_resolve_outside_the_landing_root_are_refused(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    source = _source(tmp_path, monkeypatch)
    orders = tmp_path / "landing" / "orders"
    orders.mkdir(parents=True)
    secret = tmp_path / "secret.csv"
    secret.write_text("order_id,amount,note\nS-1,1,secret\n")
    (orders / "link.csv").symlink_to(secret)
    (orders / "ok.csv").write_text("order_id,amount,note\nO-1,1,fine\n")
    reports: list[str] = []
    source.report = reports.append
    records, _ = _drive_sync(source)
    assert [orjson.loads(r.value)["order_id"] for r in records] == ["O-1"]
    assert len(reports) == 1 and "link.csv" in reports[0] and "outside the landing root" in reports[0]
    assert secret.exists() and (orders / "link.csv").is_symlink()


# ---------------------------------------------------------------------- options

@pytest.mark.parametrize(("key", "value", "message"), [
    ("settle_seconds", "soon", "settle_seconds: expected seconds"),
    ("poll_interval", 0, "poll_interval: expected seconds"),
    ("delimiter", ";;", "delimiter must be one character"),
    ("header", "yes", "header must be true or false"),
    ("encoding", "klingon", "unknown encoding"),
    ("encoding", "utf-16", "convert the files to UTF-8"),
    ("batch_size", 0, "batch_size must be a whole number"),
    ("archive_dir", "../out", "must be a folder under the landing root"),
])
def test_bad_options_fail_at_start_naming_the_contract_and_json_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, value: Any, message: str) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["dataset_config"][0]["source"][key] = value

    with pytest.raises(ConfigError, match=message) as info:
        _source(tmp_path, monkeypatch, edit=edit)
    assert "itest_fs.json" in str(info.value) and f"$.dataset_config[0].source.{key}" in str(info.value)


def test_iso_durations_and_dataset_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["source_config"]["poll_interval"] = "PT10S"
        doc["dataset_config"][0]["source"]["delimiter"] = ";"

    source = _source(tmp_path, monkeypatch, edit=edit)
    assert source.options.poll_interval == 10 and source.options.csv.delimiter == ";"
    assert source.options.archive_dir == "archive" and source.options.batch_size == 500


def test_raw_records_are_keyed_by_the_source_names_of_the_key_fields(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["dataset_config"][0]["source"]["key"] = "id"
        doc["dataset_config"][0]["transformations"] = [{"type": "rename", "from": "order_id", "to": "id"}]

    source = _source(tmp_path, monkeypatch, edit=edit)
    assert source_key_fields(source.dataset) == ("order_id",)


# ---------------------------------------------------------------------- reading, positions, archive

def test_rows_get_stable_positions_and_files_are_archived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _source(tmp_path, monkeypatch)
    orders = tmp_path / "landing" / "orders"
    orders.mkdir(parents=True)
    (orders / "a.csv").write_text("order_id,amount,note\n" + "".join(f"A-{i},{i},n\n" for i in range(1234)))
    (orders / "b.csv").write_text("order_id,amount,note\nB-1,1\nB-2,2,x\n")
    os.utime(orders / "b.csv", ns=(1, 1))  # older: read first
    records, position = _drive_sync(source)
    ids = [parse_position(r.position) for r in records]
    assert len(set(ids)) == len(records) == 1236
    b_id = ids[0][0]
    assert ids[:2] == [(b_id, 0), (b_id, 1)] and records[0].dead and not records[1].dead
    dead = orjson.loads(records[0].value)
    assert dead["source"]["file"].endswith("orders/b.csv") and dead["source"]["line"] == 2
    assert records[2].key == b"A-0" and records[2].topic == "atlas.itest_fs.orders.raw"
    assert sorted(p.name for p in (orders / "archive").iterdir()) == ["a.csv", "b.csv"]
    assert position["files"] == {} and position["done"] == {}
    assert _drive_sync(source, position)[0] == []


def test_done_files_are_remembered_until_they_disappear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _source(tmp_path, monkeypatch, "events")
    events = tmp_path / "landing" / "events"
    events.mkdir(parents=True)
    (events / "e.jsonl").write_text('{"event_id": "E-1"}\n')
    records, position = _drive_sync(source)
    assert len(records) == 1 and len(position["done"]) == 1 and (events / "e.jsonl").exists()
    assert _drive_sync(source, position)[0] == []
    os.utime(events / "e.jsonl", ns=(10**18, 10**18))  # touched, same content: still done
    assert _drive_sync(source, position)[0] == []
    (events / "e.jsonl").write_text('{"event_id": "E-1"}\n{"event_id": "E-2"}\n')  # a new version
    records, position = _drive_sync(source, position)
    assert [orjson.loads(r.value)["event_id"] for r in records] == ["E-1", "E-2"]
    (events / "e.jsonl").unlink()
    assert _drive_sync(source, position)[1]["done"] == {}


def test_a_restart_resumes_inside_a_file_and_after_an_archive_move(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    source = _source(tmp_path, monkeypatch)
    orders = tmp_path / "landing" / "orders"
    orders.mkdir(parents=True)
    (orders / "a.csv").write_text("order_id,amount,note\n" + "".join(f"A-{i},{i},n\n" for i in range(1200)))
    seen: list[Any] = []

    async def stop_after_two_batches() -> None:
        async for batch in source.poll(None):
            seen.append(json.loads(json.dumps(batch.position)))
            if len(seen) == 3:  # reader plan, then two batches of 500
                break

    asyncio.run(stop_after_two_batches())
    assert [e["next"] for e in seen[-1]["files"].values()] == [1000]
    rest, position = _drive_sync(_source(tmp_path, monkeypatch), json.loads(json.dumps(seen[-1])))
    assert [parse_position(r.position)[1] for r in rest] == list(range(1000, 1200))
    assert (orders / "archive" / "a.csv").exists()
    # Completed and moved, but the crash came before that was recorded: nothing is read again.
    fid = parse_position(rest[0].position)[0]
    entry = dict(seen[-1]["files"][fid], complete=True)
    again, position = _drive_sync(_source(tmp_path, monkeypatch), {"files": {fid: entry}, "done": {}})
    assert again == [] and position["files"] == {}


def test_a_file_still_growing_is_left_for_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["source_config"]["settle_seconds"] = 0.5

    source = _source(tmp_path, monkeypatch, edit=edit)
    orders = tmp_path / "landing" / "orders"
    orders.mkdir(parents=True)
    growing = orders / "g.csv"
    growing.write_text("order_id,amount,note\n")
    reports: list[str] = []
    source.report = reports.append

    async def scenario() -> list[OutRecord]:
        async def writer() -> None:
            for i in range(8):
                await asyncio.sleep(0.1)
                with open(growing, "a") as f:
                    f.write(f"G-{i},1,x\n")

        task = asyncio.create_task(writer())
        started = time.monotonic()
        records, _ = await _drive(source)
        assert time.monotonic() - started >= 0.5
        await task
        return records

    assert asyncio.run(scenario()) == []
    assert reports and "still being written" in reports[0] and "g.csv" in reports[0]
    records, _ = _drive_sync(source)  # settled now
    assert len(records) == 8
