"""algodistill: in-context reinforcement learning by Algorithm Distillation.

Laskin et al., "In-context Reinforcement Learning with Algorithm Distillation", arXiv 2210.14215.
"""

__version__ = "0.1.0"
