"""xaifool — the code behind the book *Manipulating Model Explanations: why you shouldn't trust me*.

Data flows one way: ``data`` → ``models`` → ``explain`` → ``attacks`` → ``metrics`` → ``plot``.
"""
__version__ = "0.1.0"

from .config import describe, get_config, seed_everything  # noqa: E402

__all__ = ["__version__", "describe", "get_config", "seed_everything"]
