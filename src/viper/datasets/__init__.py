"""Converters from a dataset's own layout to viper's generic manifest CSV."""
