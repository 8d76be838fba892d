"""Integrations that meet users where they train: a pytest plugin, an IPython extension, Lightning and
Hugging Face callbacks, multi-process (torchrun/DDP) records and GitHub workflow annotations.

Each lives in its own module and imports its framework only when that module is imported, so
``import gradlens`` never pulls in pytest, IPython, Lightning or transformers.
"""
