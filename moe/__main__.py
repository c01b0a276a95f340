from moe.cli import main

main()
