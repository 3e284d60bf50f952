"""Analyses of trained generators: activation sparsity (Table 3) and response distributions (Fig. 2)."""
