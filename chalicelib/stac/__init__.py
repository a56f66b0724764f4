"""STAC: the static catalog in the store, the search index, and the STAC API services."""
