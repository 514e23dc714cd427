"""Telenet Topology Database: the Topology table from provisioning CSV files, on a virtual clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmemu.dms import DataMinerSystem
from dmemu.elements.telenet.csv_files import csv_lines, csv_text
from dmemu.elements.telenet.topology_database import (
    MAX_REJECTED_LINES_SHOWN,
    FolderError,
    TelenetTopologyDatabase,
    read_provisioning_file,
)
from dmemu.protocol import Element, InvalidValueError, LogType, VirtualClock, expect

HEADER = "network_element_address,ninas_network_path_details\n"
HOUR = 3600


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def create(dms: DataMinerSystem, folder: Path, **settings: object) -> Element:
    return dms.create_element(
        TelenetTopologyDatabase, "Topology DB", parameters={"Provisioning Folder": str(folder), **settings}
    )


def topology(element: Element) -> dict[str, tuple[str, str, int]]:
    return {
        row["Network Element Address"]: (row["Ninas Network Path Details"], row["Source File"], row["Line"])
        for row in element.table("Topology").rows()
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "provisioning"
    path.mkdir()
    return path


class TestCsv:
    def test_good_files_build_the_table_with_file_and_line(self, dms: DataMinerSystem, folder: Path) -> None:
        write(folder, "a.csv", HEADER + '10.0.0.1,BRU-01/3/2\n10.0.0.2,"ANT-02/slot 1, port 4"\n')
        write(folder, "b.csv", "Ninas_Network_Path_Details,region,NETWORK_ELEMENT_ADDRESS\r\nGNT-7/1/1,east,10.0.1.1\r\n")
        write(folder, "notes.txt", HEADER + "10.9.9.9,never read\n")  # not *.csv
        element = create(dms, folder)
        assert topology(element) == {
            "10.0.0.1": ("BRU-01/3/2", "a.csv", 2),
            "10.0.0.2": ("ANT-02/slot 1, port 4", "a.csv", 3),
            "10.0.1.1": ("GNT-7/1/1", "b.csv", 2),  # columns found by the header, in any order and case
        }
        assert element.get("Last Run Status") == "OK"
        assert (element.get("Files Read"), element.get("Rows"), element.get("Bad Lines"), element.get("Last Error")) == (2, 3, 0, "")
        assert element.get("Last Run Time") == dms.clock.now()
        expect(element).no_errors()

    def test_bad_lines_are_counted_logged_and_shown_and_the_rest_loads(self, dms: DataMinerSystem, folder: Path) -> None:
        text = (
            HEADER.encode()
            + b"10.0.0.1,BRU-01\n"
            + b"10.0.0.2,ANT-02,extra\n"  # line 3: three fields
            + b"\n"  # a blank line is no bad line
            + b" ,GNT-03\n"  # line 5: empty address
            + b"10.0.0.4,caf\xe9\n"  # line 6: Latin-1, not UTF-8
            + b'10.0.0.5,"open quote\n'  # line 7: a quote left open
            + b"10.0.0.6,MEC-06\n"
        )
        write(folder, "drop.csv", text)
        element = create(dms, folder)
        assert topology(element) == {"10.0.0.1": ("BRU-01", "drop.csv", 2), "10.0.0.6": ("MEC-06", "drop.csv", 8)}
        assert element.get("Bad Lines") == 4 and element.get("Rows") == 2
        assert element.get("Last Run Status") == "OK, 4 bad lines skipped"
        rejected = {row["Location"]: row["Reason"] for row in element.table("Rejected Lines").rows()}
        assert list(rejected) == ["drop.csv:3", "drop.csv:5", "drop.csv:6", "drop.csv:7"]
        assert rejected["drop.csv:3"] == "3 fields where the header has 2"
        assert rejected["drop.csv:5"] == "empty network element address"
        assert rejected["drop.csv:6"].startswith("not UTF-8")
        assert rejected["drop.csv:7"].startswith("not a CSV record")
        assert element.get("Last Error").startswith("drop.csv line 7: not a CSV record")
        errors = [entry.message for entry in element.logs(LogType.ERROR)]
        assert any("drop.csv line 3: 3 fields" in message for message in errors)
        assert any("drop.csv line 6: not UTF-8" in message for message in errors)

    def test_the_rejected_lines_shown_are_capped_but_all_are_counted(self, dms: DataMinerSystem, folder: Path) -> None:
        write(folder, "a.csv", HEADER + "10.0.0.1,BRU\n" + "only-one-field\n" * 150)
        element = create(dms, folder)
        assert element.get("Bad Lines") == 150 and len(element.table("Rejected Lines")) == MAX_REJECTED_LINES_SHOWN
        assert element.get("Last Error") == "a.csv line 152: 1 field where the header has 2"
        assert len(element.logs(LogType.ERROR)) == MAX_REJECTED_LINES_SHOWN + 1
        expect(element).logged("50 more bad lines not logged one by one")

    def test_a_file_without_the_required_header_cannot_be_read(self, folder: Path) -> None:
        path = write(folder, "x.csv", "address,path\n10.0.0.1,BRU\n")
        with pytest.raises(FolderError, match="file 'x.csv' line 1: the header lacks network_element_address, ninas_network_path_details"):
            read_provisioning_file(path)
        assert read_provisioning_file(write(folder, "empty.csv", ""))[1][0].reason == "empty file: no header"
        with_bom = write(folder, "bom.csv", b"\xef\xbb\xbf" + HEADER.encode() + b"10.0.0.1,BRU\n")
        assert [e.address for e in read_provisioning_file(with_bom)[0]] == ["10.0.0.1"]

    def test_a_later_file_overrides_an_earlier_one_in_sorted_order(self, dms: DataMinerSystem, folder: Path) -> None:
        write(folder, "20260102.csv", HEADER + "10.0.0.1,new path\n")
        write(folder, "20260101.csv", HEADER + "10.0.0.1,old path\n10.0.0.2,kept\n10.0.0.2,kept again\n")
        element = create(dms, folder)
        assert topology(element) == {
            "10.0.0.1": ("new path", "20260102.csv", 2),  # the later file name wins, whatever the order created
            "10.0.0.2": ("kept again", "20260101.csv", 4),  # within a file the later line wins
        }
        expect(element).logged("2 entries overridden by a later line")

    def test_the_file_pattern_chooses_the_files(self, dms: DataMinerSystem, folder: Path) -> None:
        write(folder, "topo_1.csv", HEADER + "10.0.0.1,A\n")
        write(folder, "other.csv", HEADER + "10.0.0.2,B\n")
        element = create(dms, folder, **{"File Pattern": "topo_*.csv"})
        assert set(topology(element)) == {"10.0.0.1"} and element.get("Files Read") == 1


    def test_the_shared_csv_reader_gives_line_numbers_fields_and_problems(self) -> None:
        data = b'\xef\xbb\xbfa , b\r\n\r\n"x, y",z\n caf\xe9,1\n"open,2\n'
        assert [(line.number, line.fields, line.problem[:24]) for line in csv_lines(data)] == [
            (1, ("a", "b"), ""),  # the byte order mark and the CR go, fields are trimmed
            (3, ("x, y", "z"), ""),  # the blank line 2 is skipped
            (4, (), "not UTF-8 text (byte 5 o"),
            (5, (), "not a CSV record (unexpe"),
        ]
        assert csv_lines_text(csv_text(("a", "b"), [("x, y", 1)])) == [("a", "b"), ("x, y", "1")]


def csv_lines_text(text: str) -> list[tuple[str, ...]]:
    return [line.fields for line in csv_lines(text.encode())]


class TestLastGoodTable:
    def test_a_missing_folder_keeps_the_last_table_and_says_why(self, dms: DataMinerSystem, folder: Path) -> None:
        write(folder, "a.csv", HEADER + "10.0.0.1,BRU\n")
        element = create(dms, folder)
        built = topology(element)
        element.set("Provisioning Folder", str(folder / "gone"))
        element.set("Execute Now", 1)
        assert topology(element) == built
        status = element.get("Last Run Status")
        assert status.startswith("Failed: folder ") and "gone' does not exist" in status
        assert "the last good table (1 row from 2026-01-01 00:00:00) is kept" in status
        assert "does not exist" in element.get("Last Error") and element.get("Rows") == 1

    def test_a_run_with_no_good_row_keeps_the_last_table(self, dms: DataMinerSystem, folder: Path) -> None:
        path = write(folder, "a.csv", HEADER + "10.0.0.1,BRU\n")
        element = create(dms, folder)
        path.write_text(HEADER + ",no address\n", encoding="utf-8")
        element.set("Execute Now", 1)
        assert set(topology(element)) == {"10.0.0.1"}
        assert element.get("Last Run Status").startswith("Failed: no good line in 1 file read")
        assert element.get("Last Error") == "a.csv line 2: empty network element address" and element.get("Bad Lines") == 1
        path.unlink()
        element.set("Execute Now", "Execute")
        assert set(topology(element)) == {"10.0.0.1"}
        assert element.get("Last Run Status").startswith("Failed: no file in")

    def test_an_unreadable_file_keeps_the_last_table(
        self, dms: DataMinerSystem, folder: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write(folder, "a.csv", HEADER + "10.0.0.1,BRU\n")
        write(folder, "b.csv", HEADER + "10.0.0.2,ANT\n")
        element = create(dms, folder)
        read_bytes = Path.read_bytes

        def refuse_b(path: Path) -> bytes:  # the tests run as root, where a chmod stops nobody
            if path.name == "b.csv":
                raise PermissionError(13, "Permission denied", str(path))
            return read_bytes(path)

        monkeypatch.setattr(Path, "read_bytes", refuse_b)
        write(folder, "a.csv", HEADER + "10.0.0.1,BRU changed\n")
        element.set("Execute Now", 1)
        assert topology(element) == {"10.0.0.1": ("BRU", "a.csv", 2), "10.0.0.2": ("ANT", "b.csv", 2)}
        assert element.get("Last Run Status").startswith("Failed: file 'b.csv' cannot be read: Permission denied;")

    def test_a_file_with_a_bad_header_keeps_the_last_table_like_an_unreadable_file(self, dms: DataMinerSystem, folder: Path) -> None:
        write(folder, "a.csv", HEADER + "10.0.0.1,BRU\n")
        write(folder, "b.csv", HEADER + "10.0.0.2,ANT\n")
        element = create(dms, folder)
        built = topology(element)
        write(folder, "b.csv", "address,path\n10.0.0.2,ANT\n")  # an export with renamed columns
        element.set("Execute Now", 1)
        assert topology(element) == built  # 10.0.0.2 does not silently vanish
        status = element.get("Last Run Status")
        assert status.startswith("Failed: file 'b.csv' line 1: the header lacks network_element_address")
        assert status.endswith("the last good table (2 rows from 2026-01-01 00:00:00) is kept")

    def test_only_regular_files_are_read(self, dms: DataMinerSystem, folder: Path) -> None:
        write(folder, "a.csv", HEADER + "10.0.0.1,BRU\n")
        (folder / "b.csv").mkdir()  # a folder named like a file
        (folder / "c.csv").symlink_to(folder / "nowhere.csv")  # a dangling link
        element = create(dms, folder)
        assert element.get("Last Run Status") == "OK" and element.get("Files Read") == 1

    def test_no_folder_set_says_so(self, dms: DataMinerSystem) -> None:
        element = dms.create_element(TelenetTopologyDatabase, "Topology DB")
        assert element.get("Last Run Status") == "Failed: no Provisioning Folder is set; the last good table (0 rows) is kept"
        assert len(element.table("Topology")) == 0


class TestSchedule:
    def test_the_table_is_rebuilt_hourly(self, dms: DataMinerSystem, dmemu_clock: VirtualClock, folder: Path) -> None:
        path = write(folder, "a.csv", HEADER + "10.0.0.1,BRU\n")
        element = create(dms, folder)
        start = dmemu_clock.now()
        assert element.get("Next Update") == start + HOUR
        path.write_text(HEADER + "10.0.0.1,BRU\n10.0.0.2,ANT\n", encoding="utf-8")
        dmemu_clock.advance(HOUR - 60)
        assert set(topology(element)) == {"10.0.0.1"}  # not due yet
        dmemu_clock.advance(60)
        assert set(topology(element)) == {"10.0.0.1", "10.0.0.2"}
        assert element.get("Last Run Time") == start + HOUR and element.get("Next Update") == start + 2 * HOUR

    def test_execute_now_runs_at_once_and_the_interval_counts_from_the_last_run(
        self, dms: DataMinerSystem, dmemu_clock: VirtualClock, folder: Path
    ) -> None:
        path = write(folder, "a.csv", HEADER + "10.0.0.1,BRU\n")
        element = create(dms, folder)
        dmemu_clock.advance(600)
        path.write_text(HEADER + "10.0.0.9,NEW\n", encoding="utf-8")
        element.set("Execute Now", 1)
        assert set(topology(element)) == {"10.0.0.9"}
        assert element.get("Next Update") == dmemu_clock.now() + HOUR
        element.set("Update Interval", 2 * HOUR)
        assert element.get("Next Update") == dmemu_clock.now() + 2 * HOUR
        with pytest.raises(InvalidValueError, match="Update Interval"):
            element.set("Update Interval", 10)


class TestRestart:
    def test_the_table_survives_a_restart_even_when_the_folder_went(
        self, dmemu_state_dir: Path, dmemu_clock: VirtualClock, folder: Path
    ) -> None:
        write(folder, "a.csv", HEADER + "10.0.0.1,BRU\n10.0.0.2,ANT\n")
        with DataMinerSystem(dmemu_state_dir, dmemu_clock) as dms:
            built = topology(create(dms, folder))
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
        with DataMinerSystem(dmemu_state_dir, dmemu_clock) as dms:
            element = dms.element("Topology DB")
            assert topology(element) == built  # the start-up run failed, the saved table stays
            assert element.get("Last Run Status").startswith("Failed: folder")
            assert element.get("Provisioning Folder") == str(folder) and element.get("Rows") == 2
