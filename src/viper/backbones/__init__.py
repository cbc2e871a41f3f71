"""Small pretrained networks re-implemented in PyTorch, with weights converted once into viper/assets.

Modules here import torch at their top; import them only inside an extractor's `load()`.
"""
