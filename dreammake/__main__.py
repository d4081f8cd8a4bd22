from dreammake.cli import run

run()
