"""The shipped search spaces: YAML files, installed with ecgtune as the package ``ecgtune.search_spaces``
(pyproject.toml maps this folder there), so that a wheel knows them as a source checkout does."""
