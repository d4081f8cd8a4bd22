"""The scheduler's parts (ReadyQueue, Slots) and its loop, against a scripted launcher and a fake planner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engine_fakes import FakeJobServer, FakePlanner, ScriptedLauncher, quiet_console

from dreammake import executor
from dreammake.actions import Action
from dreammake.dsl import Workflow
from dreammake.errors import DreamError
from dreammake.executor import ReadyQueue, Scheduler, Slots, Summary
from dreammake.graph import Resolver
from dreammake.planner import Decision

pytestmark = pytest.mark.usefixtures("project_dir")  # each test in its own empty project folder


def noop(output: str) -> None:
    """A rule action; the scripted launcher never calls it."""


class ShardableNoop(Action):
    """A rule kind that may take `shards=` (as prompt rules do); never executed here."""

    kind = "fake-prompt"
    shardable = True


def decisions(root: Path, rules: dict[str, tuple[list[str], dict[str, Any]]]) -> list[Decision]:
    """Stale decisions, upstream first, for rules `name -> (names of rules it reads, resources)`; rule `x`
    writes `x.txt`. All of them are requested."""
    wf = Workflow(root / "Dreamfile")
    for name, (deps, resources) in rules.items():
        run = ShardableNoop() if "shards" in resources else noop
        wf.rule(name, input=[f"{d}.txt" for d in deps] or None, output=f"{name}.txt", run=run, resources=resources)
    graph = Resolver(wf).resolve(list(rules))
    return [Decision(job, "missing", "missing", "fp") for job in graph.jobs]


def run(ds: list[Decision], launcher: ScriptedLauncher, planner: FakePlanner | None = None, jobs: int = 1,
        keep_going: bool = False, resources: dict[str, float] | None = None,
        jobserver: FakeJobServer | None = None) -> Summary:
    scheduler = Scheduler(planner or FakePlanner(), quiet_console(), launcher, jobs, keep_going,  # type: ignore[arg-type]
                          resources, jobserver)  # type: ignore[arg-type]
    return scheduler.run(ds)


CHAIN = {"a": ([], {}), "b": (["a"], {}), "c": (["b"], {}), "x": ([], {})}


def test_ready_queue_releases_a_job_when_all_its_inputs_are_done(project_dir: Path) -> None:
    ds = decisions(project_dir, {"a": ([], {}), "b": ([], {}), "ab": (["a", "b"], {})})
    by_name = {d.job.name: d for d in ds}
    queue = ReadyQueue(ds)
    assert [d.job.name for d in queue.ready] == ["a", "b"]
    queue.remove(by_name["a"])
    queue.finished(by_name["a"])
    assert [d.job.name for d in queue.ready] == ["b"]
    queue.remove(by_name["b"])
    queue.finished(by_name["b"])
    assert [d.job.name for d in queue.ready] == ["ab"]
    assert queue.first(lambda d: d.job.name == "zz") is None


def test_ready_queue_downstream_is_transitive(project_dir: Path) -> None:
    ds = decisions(project_dir, {**CHAIN, "d": (["a", "x"], {})})
    assert sorted(ReadyQueue(ds).downstream(ds[0])) == ["b", "c", "d"]


def test_slots_resources_and_count(project_dir: Path) -> None:
    ds = decisions(project_dir, {"g2": ([], {"gpus": 2}), "g1": ([], {"gpus": 1}), "cpu": ([], {})})
    g2, g1, cpu = ds
    slots = Slots(2, {"gpus": 2})
    assert slots.fits(g2) and slots.fits(g1)
    claim = slots.claim(g2)
    assert claim is not None and slots.in_use == {"gpus": 2}
    assert not slots.fits(g1) and slots.fits(cpu)
    other = slots.claim(cpu)
    assert other is not None and not slots.free()
    slots.release(claim)
    assert slots.fits(g1) and slots.free() and slots.in_use == {"gpus": 0}


def test_slots_give_each_gpu_job_its_own_gpus_and_take_them_back(project_dir: Path) -> None:
    ds = decisions(project_dir, {"a": ([], {"gpus": 1}), "b": ([], {"gpus": 1}), "c": ([], {"gpus": 2}),
                                 "s": ([], {"gpus": 1, "shards": 2}), "cpu": ([], {})})
    a, b, c, sharded, cpu = ds
    slots = Slots(4, {"gpus": 4}, devices=["0", "1", "2", "3"])
    first, second = slots.claim(a), slots.claim(b)
    assert first is not None and second is not None
    assert (first.devices, second.devices) == (("0",), ("1",))
    assert slots.claim(cpu).devices == ()  # type: ignore[union-attr]
    slots.release(first)
    both = slots.claim(c)
    assert both is not None and both.devices == ("0", "2")  # the lowest free ids
    slots.release(second)
    slots.release(both)
    assert slots.fits(sharded) and slots.claim(sharded).devices == ("0", "1")  # type: ignore[union-attr]
    assert slots.in_use == {"gpus": 2}  # gpus are per shard: 2 shards x 1


def test_concurrent_gpu_jobs_start_on_different_gpus(project_dir: Path) -> None:
    launcher = ScriptedLauncher(gpus=2, batch=2)
    rules = {"g1": ([], {"gpus": 1}), "g2": ([], {"gpus": 1}), "g3": ([], {"gpus": 1}), "cpu": ([], {})}
    summary = run(decisions(project_dir, rules), launcher, jobs=3)
    assert sorted(summary.ran) == sorted(rules)
    assert {launcher.given["g1"], launcher.given["g2"]} == {("0",), ("1",)}  # ran at once, on different GPUs
    assert launcher.given["g3"] in {("0",), ("1",)} and launcher.given["cpu"] is None


def test_a_sharded_gpu_rule_needs_gpus_for_every_shard(project_dir: Path) -> None:
    ds = decisions(project_dir, {"s": ([], {"gpus": 1, "shards": 4})})
    with pytest.raises(DreamError, match="needs gpus=4 but only 2 are available"):
        run(ds, ScriptedLauncher(gpus=2))


def test_slots_ask_make_for_a_token_beyond_the_first_job(project_dir: Path) -> None:
    a, b, c = decisions(project_dir, {"a": ([], {}), "b": ([], {}), "c": ([], {})})
    server = FakeJobServer(1)
    slots = Slots(8, {}, server)
    first = slots.claim(a)
    assert first is not None and not first.token and server.free == 1  # the implicit slot
    second = slots.claim(b)
    assert second is not None and second.token and server.free == 0
    assert slots.claim(c) is None and slots.waiting_for_token
    slots.release(second)
    assert server.free == 1
    slots.close()
    assert server.closed


def test_jobs_start_in_dependency_then_plan_order(project_dir: Path) -> None:
    launcher = ScriptedLauncher()
    summary = run(decisions(project_dir, CHAIN), launcher)
    assert launcher.started == ["a", "x", "b", "c"]
    assert summary.ran == ["a", "x", "b", "c"] and not summary.failed and not summary.skipped
    assert launcher.closed is False


def test_at_most_jobs_at_once(project_dir: Path) -> None:
    launcher = ScriptedLauncher()
    run(decisions(project_dir, {f"j{i}": ([], {}) for i in range(6)}), launcher, jobs=3)
    assert launcher.most_at_once == 3 and len(launcher.started) == 6


def test_resource_limits_hold_while_other_jobs_fill_the_slots(project_dir: Path) -> None:
    rules = {"g1": ([], {"gpus": 2}), "g2": ([], {"gpus": 2}), "c1": ([], {}), "c2": ([], {})}
    launcher = ScriptedLauncher(gpus=3)
    summary = run(decisions(project_dir, rules), launcher, jobs=4)
    assert launcher.asked_limits == [{"gpus"}]  # detected, as no --resources gpus=N was given
    assert launcher.most_gpus == 2
    assert launcher.started[:3] == ["g1", "c1", "c2"]  # g2 waits for g1's GPUs; the CPU jobs do not wait
    assert sorted(summary.ran) == sorted(rules)


def test_command_line_limit_wins_and_a_job_that_can_never_fit_fails_first(project_dir: Path) -> None:
    launcher = ScriptedLauncher(gpus=8)
    ds = decisions(project_dir, {"g": ([], {"gpus": 2})})
    with pytest.raises(DreamError, match="needs gpus=2 but only 1 are available"):
        run(ds, launcher, resources={"gpus": 1})
    assert launcher.started == [] and launcher.asked_limits == [set()]


def test_a_failure_skips_downstream_and_stops_the_run(project_dir: Path) -> None:
    launcher = ScriptedLauncher(outcomes={"a": DreamError("boom")})
    summary = run(decisions(project_dir, CHAIN), launcher)
    assert [name for name, _ in summary.failed] == ["a"]
    assert launcher.started == ["a"]  # x was ready, but nothing starts after a failure
    assert sorted(summary.skipped) == ["b", "c", "x"]


def test_keep_going_runs_what_does_not_depend_on_the_failure(project_dir: Path) -> None:
    launcher = ScriptedLauncher(outcomes={"a": DreamError("boom")})
    summary = run(decisions(project_dir, {**CHAIN, "y": (["x"], {})}), launcher, keep_going=True)
    assert summary.ran == ["x", "y"]
    assert sorted(summary.skipped) == ["b", "c"]


def test_a_job_that_cannot_start_fails_like_one_that_ran(project_dir: Path) -> None:
    launcher = ScriptedLauncher(start_errors={"a"})
    summary = run(decisions(project_dir, CHAIN), launcher, keep_going=True)
    assert [name for name, _ in summary.failed] == ["a"] and summary.ran == ["x"]
    assert sorted(summary.skipped) == ["b", "c"]


def test_early_cutoff_skips_the_job_and_releases_its_dependants(project_dir: Path) -> None:
    launcher = ScriptedLauncher()
    planner = FakePlanner(unchanged={"b"})
    summary = run(decisions(project_dir, CHAIN), launcher, planner)
    assert summary.cut_off == ["b"] and "b" not in launcher.started
    assert launcher.started == ["a", "x", "c"]
    assert planner.decided == ["a", "x", "b", "c"]  # each decided again once its inputs were final


def test_records_are_committed_in_batches_and_at_the_end(project_dir: Path) -> None:
    planner = FakePlanner()
    run(decisions(project_dir, {f"j{i}": ([], {}) for i in range(5)}), ScriptedLauncher(), planner)
    assert sum(planner.committed, []) == [f"j{i}.txt" for i in range(5)]
    assert len(planner.committed) < 5  # instant jobs are not committed one by one


def test_a_slow_job_is_committed_at_once(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor, "FLUSH_EVERY_S", 0.0)  # every job counts as slow
    planner = FakePlanner()
    run(decisions(project_dir, {f"j{i}": ([], {}) for i in range(3)}), ScriptedLauncher(batch=3), planner, jobs=3)
    assert [c for c in planner.committed if c] == [["j0.txt"], ["j1.txt"], ["j2.txt"]]  # not one commit for all


def test_ctrl_c_keeps_finished_jobs_and_stops_the_rest(project_dir: Path) -> None:
    launcher = ScriptedLauncher(interrupt_after=1)
    planner = FakePlanner()
    summary = run(decisions(project_dir, {f"j{i}": ([], {}) for i in range(4)}), launcher, planner, jobs=3)
    assert summary.interrupted and launcher.interrupted and launcher.closed is True
    assert launcher.unfinished_at_interrupt == ["j1", "j2", "j3"]
    assert summary.ran == ["j0", "j1"]  # j0 ended before Ctrl-C, j1 finished during it
    assert sum(planner.committed, []) == ["j0.txt", "j1.txt"]


def test_jobserver_tokens_bound_the_parallelism_and_are_all_returned(project_dir: Path) -> None:
    server = FakeJobServer(1)
    launcher = ScriptedLauncher()
    summary = run(decisions(project_dir, {f"j{i}": ([], {}) for i in range(5)}), launcher, jobs=8, jobserver=server)
    assert launcher.most_at_once == 2 and len(summary.ran) == 5
    assert server.free == 1 and server.closed


def test_nothing_stale_runs_nothing(project_dir: Path) -> None:
    ds = decisions(project_dir, CHAIN)
    for d in ds:
        d.reason = None
    launcher = ScriptedLauncher()
    assert run(ds, launcher) == Summary() and launcher.closed is None
