"""``python -m townlet.train``: the same entry as the ``townlet-train`` console script."""

from townlet.cli.train import main

if __name__ == "__main__":
    main()
