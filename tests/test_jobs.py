"""``replay --jobs N``: several processes, each a shard of the connections, print the same
bytes as one: every mode that runs in parallel, on a realistic mix, the bundled captures
and the public ones; the cases that stay one job say why."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import ROOT, cannot_run, stable_lines
from rawinspect.app.cli import main

sys.path.insert(0, str(ROOT / "scripts"))
from traffic_mix import write_pcap  # noqa: E402  (a script beside the tests' data)

MODES = (["-T", "jsonl"], ["--conns"], ["--conns", "-T", "jsonl"], ["-T", "zeek"],
         ["--findings-only"], ["--findings-only", "-T", "jsonl"])
PUBLIC = ROOT.parent / "shared" / "pcaps" / "public"


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay", *args])
    out, err = capsys.readouterr()
    return code, "\n".join(stable_lines(out)), err


def same_as_one_job(capsys: pytest.CaptureFixture[str], path: Path, jobs: int) -> None:
    for mode in MODES:
        one = replay(capsys, "-j", "1", "--no-calls", *mode, str(path))
        many = replay(capsys, "-j", str(jobs), "--no-calls", *mode, str(path))
        assert many == one, f"{path.name} {' '.join(mode)}"


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 packets of the realistic mix: hundreds of connections, every ending."""
    path = tmp_path_factory.mktemp("jobs") / "mix.pcap"
    write_pcap(path, "realistic", 20_000, seed=7)
    return path


@pytest.mark.parametrize("jobs", [2, 3])
def test_the_realistic_mix_in_parallel_prints_what_one_job_prints(capsys, mix, jobs):
    same_as_one_job(capsys, mix, jobs)
    code, out, err = replay(capsys, "-j", str(jobs), "--conns", str(mix))
    assert code == 0 and "one job" not in err and out.count("\n") > 300


def test_workers_retire_their_connections_and_the_parent_keeps_findings_on_disk(
        capsys, mix, monkeypatch):
    """A short MSL retires most connections in the workers, which hand on their findings
    and origins instead of their facts; the parent keeps them on disk past a few dozen."""
    from rawinspect.views import spill
    monkeypatch.setattr(spill, "LIMIT", 30)
    monkeypatch.setattr(spill, "BLOCK", 7)
    spilled = []
    real = spill.SortedSpill._spill
    monkeypatch.setattr(spill.SortedSpill, "_spill", lambda self: spilled.append(1) or real(self))
    for mode in (["--conns"], ["--findings-only"], ["-T", "jsonl"]):
        one = replay(capsys, "-j", "1", "--msl", "0.5", "--hold", "0.2", *mode, str(mix))
        assert one[1].count("connect-same-port") + one[1].count("rst-on-close") > 10
        spilled.clear()
        assert replay(capsys, "-j", "2", "--msl", "0.5", "--hold", "0.2", *mode, str(mix)) == one
        assert spilled, f"{' '.join(mode)}: the parent kept every finding in memory"


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "captures").glob("*.pcap")))
def test_bundled_captures_in_parallel(capsys, name):
    same_as_one_job(capsys, ROOT / "captures" / name, 2)


def test_public_captures_in_parallel(capsys):
    if not PUBLIC.is_dir():
        cannot_run(f"the public captures are not at {PUBLIC} (they live beside the project)")
    files = sorted(p for p in PUBLIC.iterdir() if p.suffix in (".pcap", ".pcapng"))
    assert len(files) == 31
    for path in files:
        same_as_one_job(capsys, path, 2)


@pytest.mark.parametrize("args,why", [
    (["--port", "80"], "--port is given"),
    (["-c", "5"], "-c is given"),
    ([], "--format table is drawn in one piece"),
])
def test_what_cannot_run_in_parallel_runs_as_one_job_and_says_why(capsys, mix, args, why):
    code, out, err = replay(capsys, "-j", "2", *args, str(mix))
    assert code == 0 and f"rawinspect: one job: {why}" in err
    assert (code, out) == replay(capsys, "-j", "1", *args, str(mix))[:2]


def test_saved_calls_keep_one_job(capsys):
    code, _, err = replay(capsys, "-j", "2", "-T", "jsonl",
                          str(ROOT / "captures" / "handshake.pcap"))
    assert code == 0 and "one job: the capture has the programs' calls" in err


def test_a_damaged_file_in_parallel_says_where_as_one_job_does(capsys, tmp_path, mix):
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(mix.read_bytes()[:300_000] + b"\xff" * 20)
    assert replay(capsys, "-j", "2", "-T", "jsonl", str(cut)) == \
        replay(capsys, "-j", "1", "-T", "jsonl", str(cut))


def test_auto_the_default_shares_a_large_file_shown_per_connection(mix, monkeypatch):
    """-j auto (the default): the cores for a large file's --conns, zeek or findings; one
    job for a small file and for the segments' jsonl (whose lines one process merges)."""
    import argparse
    import os
    from rawinspect.app import jobs
    from rawinspect.app.cli import build_parser
    assert build_parser().parse_args(["replay", str(mix)]).jobs == "auto"
    cores = len(os.sched_getaffinity(0))

    def wanted(fmt: str, conns: bool = False, findings: bool = False) -> int:
        return jobs.jobs_wanted(argparse.Namespace(jobs="auto", file=str(mix), format=fmt,
                                                   conns=conns, findings_only=findings))
    assert wanted("table", conns=True) == wanted("zeek") == 1      # 20,000 packets: small
    monkeypatch.setattr(jobs, "AUTO_BYTES", 1000)
    assert wanted("table", conns=True) == wanted("jsonl", conns=True) == cores
    assert wanted("zeek") == wanted("text", findings=True) == cores
    assert wanted("jsonl") == 1


def test_jobs_must_be_a_positive_number_or_auto(capsys, mix):
    with pytest.raises(SystemExit) as e:
        main(["replay", "-j", "0", str(mix)])
    assert e.value.code == 2 and "must be positive" in capsys.readouterr().err


def test_several_files_are_each_a_capture_in_order_whatever_the_jobs(capsys, mix, tmp_path):
    files = [str(mix), str(ROOT / "captures" / "handshake.pcap"), str(tmp_path / "none.pcap"),
             str(ROOT / "captures" / "datagrams.pcap")]
    one = replay(capsys, "-j", "1", "-T", "jsonl", *files)
    assert replay(capsys, "-j", "3", "-T", "jsonl", *files) == one
    code, out, err = one
    assert code == 1     # the missing file; the others are read all the same
    kinds = [line for line in out.splitlines() if line.startswith('{"kind": "file"')]
    assert kinds == [f'{{"kind": "file", "path": "{f}"}}' for f in files]
    closing = [line for line in err.splitlines() if "packets read" in line]
    assert [line.split(": ")[1] for line in closing] == [files[0], files[1], files[3]]
    assert f"rawinspect: error: {files[2]}" in err
    # each file alone prints what it prints among the others
    alone = replay(capsys, "-T", "jsonl", files[1])[1]
    assert alone in out


def test_several_files_in_text_and_zeek(capsys, mix):
    files = [str(mix), str(ROOT / "captures" / "handshake.pcap")]
    code, out, _ = replay(capsys, "--conns", *files)
    assert code == 0 and out.startswith(f"==> {files[0]} <==\n")
    assert f"\n\n==> {files[1]} <==\n" in out
    code, out, _ = replay(capsys, "-T", "zeek", *files)
    assert out.count("#fields\t") == 2


def test_several_files_cannot_share_one_output_file(capsys, mix, tmp_path):
    assert main(["replay", "-o", str(tmp_path / "x.svg"), str(mix), str(mix)]) == 2
    assert "give one capture at a time" in capsys.readouterr().err
