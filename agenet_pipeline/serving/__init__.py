"""Serving: the registered model as an MLflow pyfunc (photos in, a row per face out), the CLI and the webcam."""
