"""ecgtune: Ray Tune hyperparameter search for ECG classifiers, tracked in MLflow.

Importing the package is cheap: ray, mlflow and torch load where they are used.
"""

__version__ = "0.1.0"
