from dreammake.cli import main

main()
