"""algodistill: in-context reinforcement learning by Algorithm Distillation.

Laskin et al., "In-context Reinforcement Learning with Algorithm Distillation", arXiv 2210.14215.
Importing the package registers the single-task Gymnasium envs `algodistill/<Name>-v0`.
"""

__version__ = "0.1.0"

from algodistill import envs  # registers the Gymnasium ids (after __version__, which submodules read)

__all__ = ["__version__", "envs"]
