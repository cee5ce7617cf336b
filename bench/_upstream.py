"""Upstream ALIGNN's side of the benchmarks: its default graph and its pure-torch model.

``knearest_graph`` builds what upstream's ``Graph.atom_dgl_multigraph(neighbor_strategy=
"k-nearest", use_canonize=True)`` builds (its graph part ``nearest_neighbor_edges`` +
``build_undirected_edgedata``, CGCNN node features, and DGL's ``line_graph(shared=True)`` as
upstream's own ``_line_graph_edges``), as the ``TorchGraph`` pair that
``ALIGNNAtomWisePure`` reads natively (DGL cannot be installed beside current torch).
Needs ``pip install alignn`` (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import numpy as np
import torch

SIZES = {"alignn_layers": 4, "gcn_layers": 4, "hidden": 256, "embedding": 64}
CUTOFF, K = 8.0, 12


def knearest_graph(atoms):
    """``(g, lg)`` TorchGraphs of a ``jarvis.core.atoms.Atoms``: upstream's default graph."""
    from alignn.graphs import build_undirected_edgedata, nearest_neighbor_edges
    from alignn.torch_graph_builder import TorchGraph, _line_graph_edges
    from jarvis.core.specie import get_node_attributes

    edges, _ = nearest_neighbor_edges(
        atoms=atoms, cutoff=CUTOFF, max_neighbors=K, use_canonize=True
    )
    u, v, r, _images = build_undirected_edgedata(atoms, edges)
    feats = np.array([list(get_node_attributes(s, atom_features="cgcnn")) for s in atoms.elements])
    r = torch.as_tensor(np.asarray(r), dtype=torch.float32)
    g = TorchGraph(
        num_nodes=len(atoms.elements),
        src=torch.as_tensor(np.asarray(u), dtype=torch.long),
        dst=torch.as_tensor(np.asarray(v), dtype=torch.long),
        ndata={"atom_features": torch.as_tensor(feats, dtype=torch.float32)},
        edata={"r": r},
    )
    lg_src, lg_dst = _line_graph_edges(g.src, g.dst, g.num_nodes)
    return g, TorchGraph(num_nodes=g.num_edges, src=lg_src, dst=lg_dst, ndata={"r": r})


def model(sizes: dict[str, int] = SIZES):
    """``ALIGNNAtomWisePure`` for property prediction at ``sizes`` (no forces, no penalty)."""
    from alignn.models.alignn_atomwise_pure import ALIGNNAtomWisePure, ALIGNNAtomWisePureConfig

    return ALIGNNAtomWisePure(
        ALIGNNAtomWisePureConfig(
            name="alignn_atomwise_pure",
            alignn_layers=sizes["alignn_layers"],
            gcn_layers=sizes["gcn_layers"],
            hidden_features=sizes["hidden"],
            embedding_features=sizes["embedding"],
            atom_input_features=92,
            calculate_gradient=False,
            use_penalty=False,
        )
    )


def batch(pairs: list) -> tuple:
    """A batch of ``(g, lg)`` pairs as the model's input triple."""
    from alignn.torch_graph_builder import batch_torch_graph_pairs

    g, lg = batch_torch_graph_pairs(pairs)
    return g, lg, None
