"""Pydantic schemas, one module per stage family. Imported only when a config is validated."""
