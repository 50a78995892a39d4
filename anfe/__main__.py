"""``python -m anfe`` runs the CLI."""

from anfe.cli.app import main

if __name__ == "__main__":  # not again in processes spawned from it (Dask's LocalCluster workers)
    main()
