"""Importers: samples made elsewhere, written as ordinary records (see docs/import.md).

``common`` plans and writes the records of validated samples (content-addressed: the same
source file imported again adds nothing); ``table`` reads a JSONL, CSV or Parquet table
through a column mapping.
"""
