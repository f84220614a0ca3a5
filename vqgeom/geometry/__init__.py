"""Exact partitions, region adjacency graphs, d_Omega and the lemmas (Section 2, Appendix B).

>>> import numpy as np
>>> from vqgeom.geometry import partition
>>> part = partition((np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2)), (-1, 1, -1, 1))
>>> part.n_regions, part.graph.number_of_edges()
(4, 4)

shapely, networkx and matplotlib are imported when first needed.
"""

from .examples import printed_map_net, shallow_tent_net, tent_breakpoints, tent_map_net
from .lemmas import LemmaReport, verify_lemma1, verify_lemma2
from ._partition import Partition, partition, plane_through
from .plot import plot_distance_scatter, plot_graph, plot_partition

__all__ = [
    "partition",
    "Partition",
    "plane_through",
    "verify_lemma1",
    "verify_lemma2",
    "LemmaReport",
    "printed_map_net",
    "tent_map_net",
    "shallow_tent_net",
    "tent_breakpoints",
    "plot_partition",
    "plot_graph",
    "plot_distance_scatter",
]
