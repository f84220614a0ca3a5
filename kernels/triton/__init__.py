"""Triton kernels for vqgeom (CUDA torch tensors; ``TRITON_INTERPRET=1`` runs them on the CPU).

``hamming``     packed XOR + popcount distances; ``pairwise_hamming`` dispatches to ``int8``
``int8``        +-1 int8 tensor-core distances, per-layer K segments
``encode``      fused MLP encoder and the one-pass query kernel (encode + distances)
``reductions``  streamed heat-kernel products, heat-kernel cosines, k nearest neighbours

Nothing is imported here: each module loads triton when it is imported itself.
"""
