"""Kaggle shipping: dataset and kernel metadata, the source bundle, the notebook.

The kaggle client's metadata files are the interface: what is written here is
what `kaggle datasets create/version` and `kaggle kernels push` read.
"""
