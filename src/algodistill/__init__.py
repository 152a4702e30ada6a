"""algodistill: in-context reinforcement learning by Algorithm Distillation.

Laskin et al., "In-context Reinforcement Learning with Algorithm Distillation", arXiv 2210.14215.
Importing the package registers the single-task Gymnasium envs `algodistill/<Name>-v0`;
`algodistill.Agent` (a trained model acting step by step, `algodistill.agent`) is imported on first use.
"""

__version__ = "0.1.0"

from algodistill import envs  # registers the Gymnasium ids (after __version__, which submodules read)

__all__ = ["Agent", "__version__", "envs"]


def __getattr__(name: str) -> object:
    if name == "Agent":  # lazily: `import algodistill` stays light for gymnasium.make users
        from algodistill.agent import Agent

        return Agent
    raise AttributeError(f"module 'algodistill' has no attribute {name!r}")
