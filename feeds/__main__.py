"""``python -m feeds``: the same as the ``feeds`` command."""

from .cli import run_program

if __name__ == "__main__":  # not when a spawned worker process imports this module
    run_program()
