"""sera: referring image segmentation with spatio-semantic expert routing (SERA, CVPR 2025).

The package root stays import-light on purpose: `sera --help` must not pay for torch.
"""

__version__ = "0.1.0"
