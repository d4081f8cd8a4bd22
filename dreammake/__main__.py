from dreammake.entry import run

run()
