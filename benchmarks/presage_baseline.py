"""The model card's presage baseline: ``benchmarks.presage``'s command line under its earlier name.

    python -m benchmarks.presage_baseline --db RUN/presage.db --train FILE_OR_FOLDER... \\
        --eval RUN/data/heldout/novels.txt RUN/data/heldout/tldr.txt --words 2000

presage built from the same training files (case kept; ``--lowercase`` as the earlier figures), typing the same
tokens as ``autocomplete eval`` by the same simulator; ``--reference`` adds presage_simulator's own figure. See
``python -m benchmarks.presage --help``.
"""

from benchmarks.presage import main

if __name__ == "__main__":
    raise SystemExit(main())
