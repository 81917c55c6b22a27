"""Dataset readers, transforms and synthetic demo-data writers (plain PyTorch, no Lightning)."""
