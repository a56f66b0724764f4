"""stacflow: MLOps discovery and tracking for Earth-observation ML, on object storage."""
__version__ = "0.1.0"
