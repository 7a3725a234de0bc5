"""Allow `python -m polyroute`."""

from polyroute.cli import main

main()
