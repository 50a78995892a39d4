"""ANFE: Average Neural Face Embeddings for gender recognition (Makinist, Ay and Aydin, 2020).

Face analysis over dlib, an embeddings cache, centroid builds, evaluation, prediction and the
store. This package knows nothing of Scrapy or Streamlit.
"""

__version__ = "0.1.0"
