"""Getting datasets in and out: import labelled photos into a root, export a root as a shareable dataset."""
