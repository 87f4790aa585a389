"""medmm: medical multimodal analysis, from hospital archive to fused models.

The package is organised by stage (``ingest``, ``imaging``, ``reports``, ``signals``, ``align``,
``models``, ``predict``); ``workflows`` only wires stages together with Dask.

>>> import medmm
>>> medmm.__version__
'0.1.0'
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
