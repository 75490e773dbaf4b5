"""Shenpi command line: ``python run.py --help``."""

from service.cli import main

if __name__ == "__main__":
    main()
