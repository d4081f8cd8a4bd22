"""dreammake in a real terminal: rich draws live progress bars, one per prompt rule, as a person sees them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from ux_helpers import FakeTerminal

from dreammake.console import Console

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")

TERMINAL_DREAMFILE = """
writer = llm("smollm2-135m-instruct", max_tokens=12, temperature=0)
rule("topics", output="t/topics.parquet",
     run=rules.rows([{"topic": t} for t in ["tides", "volcanoes", "bees", "glaciers"]]))
rule("questions", input="t/topics.parquet", output="t/questions.parquet",
     run=rules.process_with_prompt(llm=writer, input_column="topic", output_column="question",
                                   instruction="Ask one short question about this topic."))
rule("answers", input="t/questions.parquet", output="t/answers.parquet",
     run=rules.process_with_prompt(llm=writer, input_column="question", output_column="answer",
                                   instruction="Answer in one sentence."))
rule("qa_model", input={"train": "t/answers.parquet"}, output="models/qa/",
     run=rules.train_sft(base="smollm2-135m-instruct", input_column="question", output_column="answer",
                         lora={"r": 4}, max_steps=1, batch_size=4, max_length=64))
rule("all", input=["models/qa/"])
"""


def run_in_terminal(args: list[str], cwd: Path, timeout: float = 900) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as stdin, stdout and stderr; returns its exit code and the screen
    text (escape sequences removed)."""
    main_fd, child_fd = os.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(args, cwd=cwd, stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env,
                            start_new_session=True)
    os.close(child_fd)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    os.close(main_fd)
    return code, ANSI.sub("", b"".join(chunks).decode(errors="replace"))


def test_progress_bars_one_after_another(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    console = Console(stream=FakeTerminal())
    console.start_progress(3)
    for name in ("first", "second", "third"):  # a finished bar is removed before the next one starts
        advance = console.task(f"{name}: generate", 4)
        for _ in range(4):
            advance(1)
        advance(1)  # a late extra call after the bar finished changes nothing
        console.advance()
    console.stop_progress()


def test_two_prompt_rules_and_training_in_a_terminal(project, smol_checkpoint):
    project.dreamfile(TERMINAL_DREAMFILE)
    code, screen = run_in_terminal([sys.executable, "-m", "dreammake", "all"], project.root)
    assert code == 0, screen
    assert "Traceback" not in screen and "IndexError" not in screen and "error:" not in screen, screen
    for rule in ("topics", "questions", "answers", "qa_model"):
        assert f"done {rule} (" in screen, screen
    assert "4 job(s) run" in screen, screen
    assert (project.root / "models/qa/adapter_config.json").exists()
    assert all(r["answer"] for r in project.read("t/answers.parquet"))
