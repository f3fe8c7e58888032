"""`python -m worker.cli …` runs the `wabot` command line (the tests and the demo start it so)."""

from worker.cli.main import main

if __name__ == "__main__":
    main(prog_name="wabot")
