"""Models over the embeddings: builds, centroids, splits, evaluation, fairness, prediction, reports."""
