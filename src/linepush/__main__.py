"""`python -m linepush`: the command line."""

from linepush.cli import main

main()
