"""`python -m smallfirst` is the `smallfirst` command."""

from smallfirst.cli import main

main()
