"""The shipped dataset configs (`<signal>/<name>.yaml`), installed as the package data `implicit_gon.configs`."""
