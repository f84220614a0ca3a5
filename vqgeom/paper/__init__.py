"""The paper's apparatus, apart from the library: everything that reproduces "VQ-Kernels" and nothing a user needs.

- :mod:`vqgeom.paper.reproduce`: ``vqgeom reproduce fig1..fig5|all`` (see REPRODUCTION.md);
- :mod:`vqgeom.paper.data`: the paper's data sets (two moons, the R^100 moons, the disc grid) and the
  MNIST IDX loader;
- :mod:`vqgeom.paper.figures`: Fig. 5 and the three-panel partition figure;
- :mod:`vqgeom.paper.campaign`: ``vqgeom lemmas``, the randomised check of Lemmas 1 and 2.

The library proper (codes, encoding, distances, heat kernels and comparison, embeddings,
neighbours, geometry, kernels) never imports this package (tests/test_paper_apart.py checks it).
``vqgeom.data`` and ``vqgeom.reproduce`` remain as aliases of the modules here.
"""
